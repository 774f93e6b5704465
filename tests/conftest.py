"""Tests run with the default plans (descend.plans): a plan chosen from this
machine's measured profile would make the paths a test takes depend on the
machine. tests/test_plans.py tests the profile and the plans themselves."""
import os

os.environ["DESCEND_PROFILE"] = "0"
os.environ.pop("DESCEND_PLAN", None)
