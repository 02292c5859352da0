"""The REST API under /api/v1/: thin views (views.py) over services and selectors.

Each module holds one concern: ``urls`` the routes, ``views`` one class per endpoint,
``serializers`` the bodies it answers with, ``inputs`` the decoding of a drawing from a request,
``pagination`` the list pages, ``waiting`` the short wait for the worker's prediction, and
``errors`` the one error body every failure gets.
"""
