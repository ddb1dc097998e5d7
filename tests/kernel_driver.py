"""Drive a real IPython kernel through jupyter_client, as a notebook front end would."""

from __future__ import annotations

import os
import queue
import signal
import time
from dataclasses import dataclass, field

from jupyter_client import KernelManager


@dataclass
class Result:
    reply: dict
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    results: list = field(default_factory=list)
    seconds: float = 0.0


class Kernel:
    """A started kernel; remembers every widget model it has seen on iopub."""

    def __init__(self, cwd: str, env: dict | None = None) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=cwd, **({"env": env} if env else {}))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.widgets: dict[str, dict] = {}   # comm id -> latest state
        self.iopub: list[dict] = []          # every message's content, for searching outputs

    def _note(self, msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        self.iopub.append(content)
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.widgets[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.widgets:
            data = content["data"]
            if data.get("method") == "update":
                self.widgets[content["comm_id"]].update(data.get("state", {}))

    def drain(self) -> None:
        while True:
            try:
                self._note(self.kc.get_iopub_msg(timeout=0.05))
            except queue.Empty:
                return

    def execute(self, code: str, timeout: float = 60, allow_error: bool = False) -> Result:
        started = time.perf_counter()
        msg_id = self.kc.execute(code)
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        result = Result(reply, seconds=time.perf_counter() - started)
        deadline = time.time() + timeout
        while time.time() < deadline:      # iopub up to this request's idle status
            msg = self.kc.get_iopub_msg(timeout=timeout)
            self._note(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                setattr(result, content["name"], getattr(result, content["name"]) + content["text"])
            elif kind in ("execute_result", "display_data"):
                result.results.append(content["data"])
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                break
        if result.error and not allow_error:
            raise AssertionError(f"cell failed: {result.error}\n{code}")
        return result

    def value(self, expression: str, timeout: float = 60) -> str:
        result = self.execute(f"print({expression})", timeout)
        return result.stdout.strip()

    def wait_for(self, expression: str, expected: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.value(expression) == expected:
                return
            time.sleep(0.2)
        raise AssertionError(f"{expression} never became {expected!r} (last {self.value(expression)!r})")

    def buttons(self, description: str, timeout: float = 10) -> list[str]:
        """The comm ids of the Buttons labelled `description` (waiting until one shows up)."""
        deadline = time.time() + timeout
        while True:
            self.drain()
            found = [cid for cid, state in self.widgets.items()
                     if state.get("_model_name") == "ButtonModel" and state.get("description") == description]
            if found or time.time() > deadline:
                return found

    def click(self, comm_id: str) -> None:
        """Send what a browser sends when a Button is clicked."""
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", {
            "comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}))

    def type_into(self, comm_id: str, text: str) -> None:
        """Send what a browser sends when a person edits a text widget."""
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", {
            "comm_id": comm_id, "data": {"method": "update", "state": {"value": text}, "buffer_paths": []}}))

    def kill(self) -> None:
        """SIGKILL the kernel process, as a crash would: no cleanup code runs in it."""
        self.kc.stop_channels()
        process = self.km.provisioner.process
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.km.cleanup_resources()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
