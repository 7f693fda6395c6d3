"""``appreg``: the integrator's command line for the registration service (Service Bus)."""
