"""The workflows: register, decommission, rotate (on request and per application), and the
rotation sweep, as functions over ``Dependencies`` and the narrow ports in ``ports``.

``requests.answer`` is one registration-queue delivery start to finish; ``delivery`` holds the
last-delivery rule; ``tasks.gather_all`` runs independent platform calls side by side.
"""
