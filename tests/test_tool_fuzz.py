"""Fuzzing the file tools' arguments: a string or a ToolError, never anything else, never a
write outside the worktree. benchmarks/tool_fuzz.py runs the same with more examples."""

import pytest
from hypothesis import HealthCheck, given, settings

from tool_fuzzing import FILE_TOOLS, arguments, check_call, guarded, make_worktree

EXAMPLES = 200


@pytest.mark.parametrize("tool", FILE_TOOLS)
def test_any_arguments_give_an_answer_or_a_tool_error(tool, tmp_path):
    ws = make_worktree(tmp_path)
    before = guarded(ws)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(args=arguments(tool))
    def calls(args):
        check_call(ws, tool, args, before)

    calls()
