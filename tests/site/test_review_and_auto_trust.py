"""Reviewing corrections: who may, what the auto-trust rule approves, and bad review input."""

import pytest
from django.contrib.auth.models import Permission

from recognition import services
from recognition.errors import InvalidState, UnknownLabel
from recognition.models import Correction, SiteConfiguration, Submission
from recognition.selectors import site_configuration_get
from tests.site.workers import post_drawing

pytestmark = pytest.mark.django_db

# The model read "7", then "T", then "1": a claim of "T" is its second choice.
TOP_K = [{"label": "7", "probability": 0.6}, {"label": "T", "probability": 0.3}, {"label": "1", "probability": 0.05}]


@pytest.fixture
def predicted():
    def make(top_k=TOP_K) -> Submission:
        return Submission.objects.create(
            image=b"\x89PNG",
            content_type="image/png",
            input28=bytes(784),
            status=Submission.Status.PREDICTED,
            predicted_label=top_k[0]["label"] if top_k else "",
            top_k=top_k,
        )

    return make


@pytest.fixture
def auto_trust_on():
    SiteConfiguration.objects.create(auto_approve_second_choice=True)


def test_auto_trust_is_off_by_default_and_a_second_choice_claim_stays_pending(predicted):
    assert site_configuration_get().auto_approve_second_choice is False
    assert not SiteConfiguration.objects.exists()  # no row needed for the defaults
    correction = services.correction_create(submission=predicted(), label="T")
    assert (correction.status, correction.auto_rule, correction.reviewer, correction.reviewed_at) == (
        "pending",
        "",
        None,
        None,
    )


def test_with_auto_trust_on_only_second_choice_claims_are_approved(predicted, auto_trust_on):
    second = services.correction_create(submission=predicted(), label="T")
    assert (second.status, second.auto_rule, second.reviewer) == ("approved", "second_choice", None)
    assert second.reviewed_at is not None
    third = services.correction_create(submission=predicted(), label="1")
    other = services.correction_create(submission=predicted(), label="x")
    not_predicted = services.correction_create(submission=predicted(top_k=[]), label="T")
    assert [c.status for c in (third, other, not_predicted)] == ["pending"] * 3
    assert all(c.auto_rule == "" for c in (third, other, not_predicted))


def test_changing_an_auto_approved_claim_sends_the_new_label_to_review(predicted, auto_trust_on):
    submission = predicted()
    first = services.correction_create(submission=submission, label="T")
    changed = services.correction_create(submission=submission, label="Y")
    assert changed.id == first.id and Correction.objects.count() == 1
    assert (changed.label, changed.status, changed.auto_rule, changed.reviewed_at) == ("Y", "pending", "", None)
    back = services.correction_create(submission=submission, label="T")
    assert (back.id, back.status, back.auto_rule) == (first.id, "approved", "second_choice")


def test_a_reviewer_can_overrule_an_auto_approval_the_model_has_not_learned(predicted, auto_trust_on, staff):
    correction = services.correction_create(submission=predicted(), label="T")
    assert services.correction_review(correction_ids=[correction.id], reviewer=staff, status="rejected") == 1
    correction.refresh_from_db()
    assert (correction.status, correction.reviewer, correction.auto_rule) == ("rejected", staff, "second_choice")


def test_the_admin_turns_auto_trust_on_without_code_changes(admin_client_for, predicted):
    page = admin_client_for.get("/admin/recognition/siteconfiguration/", follow=True)
    assert page.status_code == 200 and b"auto_approve_second_choice" in page.content
    assert admin_client_for.get("/admin/recognition/siteconfiguration/add/").status_code == 403
    response = admin_client_for.post(
        "/admin/recognition/siteconfiguration/1/change/", {"auto_approve_second_choice": "on"}, follow=True
    )
    assert response.status_code == 200 and site_configuration_get().auto_approve_second_choice
    assert services.correction_create(submission=predicted(), label="T").status == "approved"
    page = admin_client_for.get("/admin/recognition/correction/?auto_rule=second_choice")
    assert b"second_choice" in page.content
    assert SiteConfiguration.objects.count() == 1


def test_reviewing_needs_the_change_permission_on_corrections(client, user_factory, predicted):
    correction = services.correction_create(submission=predicted(), label="x")
    viewer = user_factory("victor", staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_correction"))
    client.force_login(viewer)
    assert client.get("/admin/recognition/correction/").status_code == 200
    response = client.post("/admin/recognition/correction/", {"action": "approve", "_selected_action": [correction.id]})
    assert response.status_code in (200, 302)  # the admin answers "no such action", changes nothing
    correction.refresh_from_db()
    assert correction.status == "pending" and correction.reviewer is None

    client.force_login(user_factory("norma"))  # not staff: the admin is closed
    assert client.get("/admin/recognition/correction/").status_code == 302
    client.post("/admin/recognition/correction/", {"action": "approve", "_selected_action": [correction.id]})
    correction.refresh_from_db()
    assert correction.status == "pending"


def test_a_reviewer_with_the_change_permission_approves_and_reads_what_was_skipped(client, user_factory, predicted):
    first = services.correction_create(submission=predicted(), label="x")
    rejected = services.correction_create(submission=predicted(), label="y")
    reviewer = user_factory("rita", staff=True)
    reviewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_correction", "change_correction"]))
    services.correction_review(correction_ids=[rejected.id], reviewer=reviewer, status="rejected")
    client.force_login(reviewer)
    response = client.post(
        "/admin/recognition/correction/",
        {"action": "approve", "_selected_action": [first.id, rejected.id]},
        follow=True,
    )
    assert b"1 correction(s) approved; 1 already reviewed, left alone." in response.content
    assert dict(Correction.objects.values_list("id", "status")) == {first.id: "approved", rejected.id: "rejected"}


def test_approving_an_already_rejected_correction_changes_nothing(predicted, staff, bob):
    correction = services.correction_create(submission=predicted(), label="x")
    services.correction_review(correction_ids=[correction.id], reviewer=bob, status="rejected")
    assert services.correction_review(correction_ids=[correction.id], reviewer=staff, status="approved") == 0
    correction.refresh_from_db()
    assert (correction.status, correction.reviewer) == ("rejected", bob)


def test_bad_review_and_correction_input_is_refused_and_writes_nothing(predicted, staff, anon, active_model, drawing):
    correction = services.correction_create(submission=predicted(), label="x")
    with pytest.raises(InvalidState, match="approved or rejected"):
        services.correction_review(correction_ids=[correction.id], reviewer=staff, status="pending")
    with pytest.raises(UnknownLabel):
        services.correction_create(submission=predicted(), label="ab")
    assert services.correction_review(correction_ids=[987654], reviewer=staff, status="approved") == 0
    assert Correction.objects.count() == 1 and Correction.objects.get().status == "pending"
    # Through the API: an unknown label is a clear 400 with a code, and no row.
    submission_id = post_drawing(anon, drawing).json()["id"]
    response = anon.post(f"/api/v1/submissions/{submission_id}/correction", {"label": "%"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "unknown_label"
    assert Correction.objects.count() == 1
