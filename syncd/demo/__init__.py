"""`syncd demo`: the shipped processes played end to end against the sandbox.

A scripted story (story.py) of the example company (config/sandbox-seed.yaml) runs the real
daemon with the shipped rules (rules/) over several simulated weeks (runner.py). What it does is
told as a timeline read from the vendors (timeline.py), and every process is judged by reading
what people would see in Zendesk, Salesforce, SharePoint and their mailboxes (checks.py). The
end-to-end tests (tests/e2e/test_shipped_processes.py) run the same story and the same checks.
"""
