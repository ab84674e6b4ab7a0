"""A source's error crosses a process boundary whole (the bench's loads run in a child process;
a pickled error that lost its fields reached the parent as a BrokenProcessPool)."""

import pickle

import pytest

from contract.config import ContractError
from resources.amocrm import GrantRefused
from resources.errors import ConfigError, SourceError


@pytest.mark.parametrize(
    "error",
    [
        SourceError("Supabase Main", "Supabase Main: timed out", transient=True),
        ConfigError("AmoCRM", "AmoCRM: AMOCRM_BASE_URL is not set (set it)."),
        GrantRefused("AmoCRM refused the grant", "Token has been revoked", True),
        ContractError("contract: no table named x"),
    ],
)
def test_given_a_source_error_when_pickled_then_it_comes_back_whole(error: SourceError):
    back = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(back) is type(error) and str(back) == str(error)
    assert back.__dict__ == error.__dict__
