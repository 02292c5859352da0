"""Who may do what beyond their own rows: the admin's rule, for the API too.

The admin lets a user in only when they are staff, and then shows or does only what their
model permissions allow (``recognition.view_submission``, ...). The API asked only for
``is_staff``, so a staff account without permissions read anyone's submission, corrected it
and exported the corrections, all of which the admin refused it. Here is the admin's rule,
once, for the selectors and the API's permission classes.
"""

from rest_framework.permissions import BasePermission

VIEW_SUBMISSIONS = "recognition.view_submission"
VIEW_WORDS = "recognition.view_word"
VIEW_CORRECTIONS = "recognition.view_correction"
ADD_CORRECTIONS = "recognition.add_correction"


def staff_has_perm(user, perm: str) -> bool:
    """Staff (and active) with the model permission ``perm``; a superuser has them all.

    ``is_staff`` is asked first: a visitor or a plain user costs no permission query.
    """
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff and user.has_perm(perm))


class CanViewCorrections(BasePermission):
    """Staff with ``recognition.view_correction``: what the admin's export actions need."""

    message = "Exporting corrections needs staff status and the view correction permission."

    def has_permission(self, request, view) -> bool:
        return staff_has_perm(request.user, VIEW_CORRECTIONS)
