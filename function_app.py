"""The composition root: the function app and its blueprints, nothing else."""

import azure.functions as func

from handlers import registration, rotation

app = func.FunctionApp()
app.register_functions(registration.bp)
app.register_functions(rotation.bp)
