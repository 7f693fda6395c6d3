"""Triggers: each module is one blueprint that turns a trigger into a typed request, calls one
workflow, and turns the outcome into the reply."""
