"""The admin site's pages for the recognition app, one module per concern.

Django's autodiscovery imports ``recognition.admin``; importing the modules here is what
registers their ModelAdmins.
"""

from recognition.admin import corrections, model_versions, retraining, site_configuration, submissions  # noqa: F401
