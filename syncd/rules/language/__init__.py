"""The rule language: what admins write, read and checked.

The models of a rules file, one module per section of docs/rules.md, and what turns files into
a `RuleSet` (the loader, vars, templates, lint, diagnostics). It never imports the engine.
"""
