"""The writer memory's fit changed (ml.writer_layer.DEFAULT_LAYER_RULE: the anchors weigh per
entry, 2026-12-08). What was worked out under the old rule is dropped; it is derived, and a
worker works each writer's memory out again on their next drawing or correction."""

from django.db import migrations


def drop_adaptations(apps, schema_editor):
    apps.get_model("recognition", "WriterAdaptation").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recognition", "0010_writer_adaptation"),
    ]

    operations = [
        migrations.RunPython(drop_adaptations, migrations.RunPython.noop),
    ]
