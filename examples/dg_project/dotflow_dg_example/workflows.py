"""The project's workflows, plain Python: ``defs/*/defs.yaml`` name them by module and attribute."""

from dotflow import action

from dotflow_dagster import DotflowWorkflow


@action
def greet(initial_context):
    return f"Hello, {initial_context.storage['name']}!"


greetings_workflow = DotflowWorkflow("greetings", steps=[greet], description="Greets the payload's name.")


@action
def parse(initial_context):
    return [float(amount) for amount in initial_context.storage["amounts"]]


@action
def total(previous_context):
    return sum(previous_context.storage)


daily_totals_workflow = DotflowWorkflow(
    "daily-totals",
    steps=[parse, total],
    ignore_paths=["root['received_at']"],  # a redelivery of the same amounts runs nothing
    description="Sums the payload's amounts.",
)
