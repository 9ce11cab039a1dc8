# The two commands of the README. Both set up .venv themselves (scripts/bootstrap.sh).
.PHONY: demo test venv

venv:
	bash scripts/bootstrap.sh

demo: venv
	.venv/bin/perception demo

test: venv
	.venv/bin/python -m pytest -q --durations=10 tests
