"""Command line of osqr-nb: `python -m osqr_nb merge-file OURS BASE THEIRS`.

merge-file runs the automatic resolvers with no model (git's text merge, then the
Python-aware merge of `osqr_nb.workspace.semantic`), so that they can be measured
and used as a git merge driver.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON_SUFFIXES = (".py", ".pyi", ".pyw")   # as in workspace.semantic, imported only when needed (libcst is slow to load)

DRIVER_HELP = """\
exit status: 0 clean, 1 conflicts left (the result holds conflict markers), 2 on error.
git merge-file's own status is the number of conflicts; here any number is 1.

as a git merge driver (git passes %A ours, %O base, %B theirs as temporary copies;
the driver writes its result to %A; add `--path %P` to pass the real name too):
  git config merge.osqr.driver "python -m osqr_nb merge-file %A %O %B"
  echo '*.py merge=osqr' >> .gitattributes
"""


class MergeError(Exception):
    """A merge that could not run at all (missing file, git failing): exit 2."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except MergeError as error:
        print(f"osqr_nb {args.name}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m osqr_nb", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    merge = commands.add_parser(
        "merge-file", help="3-way merge of one file (git merge-file, then the Python-aware merge)",
        description="Merge THEIRS into OURS (changes since BASE), like `git merge-file`; "
                    "by default the result overwrites OURS.",
        epilog=DRIVER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("ours", metavar="OURS")
    merge.add_argument("base", metavar="BASE")
    merge.add_argument("theirs", metavar="THEIRS")
    merge.add_argument("-p", "--stdout", action="store_true", help="print the result instead of writing OURS")
    merge.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT instead of OURS")
    merge.add_argument("-L", dest="labels", action="append", default=[], metavar="LABEL",
                       help="conflict labels for OURS, BASE, THEIRS (up to three, as in git)")
    merge.add_argument("--path", help="the file's real name, to tell Python files (a driver passes %%P)")
    merge.add_argument("--diff3", action="store_true", help="show the base in conflicts")
    merge.add_argument("-q", "--quiet", action="store_true", help="say nothing about conflicts")
    merge.set_defaults(command=merge_file, name="merge-file")
    return parser


def merge_file(args: argparse.Namespace) -> int:
    """git merge-file first; if it leaves conflicts in a Python file, the semantic merge."""
    paths = (args.ours, args.base, args.theirs)
    texts = [_read(path, role) for path, role in zip(paths, ("OURS", "BASE", "THEIRS"))]
    if len(args.labels) > 3:
        raise MergeError("at most three -L labels")
    labels = [*args.labels, *paths[len(args.labels):]]
    name = args.path or args.ours
    note = _agree_on_version(texts) if _is_python(name) else None
    status, merged = _git_merge_file(texts, labels, args.diff3)
    if note and not args.quiet:
        print(f"osqr_nb merge-file: {name}: {note}", file=sys.stderr)
    if _is_python(name):
        status, merged, reason = _python_merge(texts, status, merged, labels, args.diff3)
        if status and not args.quiet:
            print(f"osqr_nb merge-file: {name}: conflicts left: {reason}", file=sys.stderr)
    _write(args, merged)
    return status


def _read(path: str, role: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise MergeError(f"cannot read {role} {path!r}: {error.strerror}") from None


def _agree_on_version(texts: list[bytes]) -> str | None:
    """Both sides raised the version: give them the higher one before merging (texts changes in place)."""
    from .workspace.versions import agree_on_version

    try:
        ours, base, theirs = (text.decode() for text in texts)
    except UnicodeDecodeError:
        return None
    agreed = agree_on_version(base, ours, theirs)
    if agreed.note:
        texts[0], texts[2] = agreed.ours.encode(), agreed.theirs.encode()
    return agreed.note


def _git_merge_file(texts: list[bytes], labels: list[str], diff3: bool) -> tuple[int, bytes]:
    """Run `git merge-file -p` on temporary copies: (0 clean or 1 conflicts, the result)."""
    with tempfile.TemporaryDirectory(prefix="osqr-merge-") as tmp:
        copies = []
        for role, text in zip(("ours", "base", "theirs"), texts):
            copy = Path(tmp) / role
            copy.write_bytes(text)
            copies.append(str(copy))
        options = [option for label in labels for option in ("-L", label)] + (["--diff3"] if diff3 else [])
        try:
            done = subprocess.run(["git", "merge-file", "-p", *options, *copies], capture_output=True)
        except OSError as error:
            raise MergeError(f"cannot run git: {error}") from None
    if not 0 <= done.returncode < 128:
        raise MergeError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return min(done.returncode, 1), done.stdout


def _is_python(name: str) -> bool:
    """By the name; git's temporary copies for a driver (.merge_file_XXXXXX) count, since the
    .gitattributes line already chose the files."""
    return name.endswith(PYTHON_SUFFIXES) or Path(name).name.startswith(".merge_file_")


def _python_merge(texts: list[bytes], status: int, merged: bytes, labels: list[str],
                  diff3: bool) -> tuple[int, bytes, str]:
    """Accept git's clean result only if it passes the checks (else the semantic merge, which is
    checked too, may still give a good one); resolve git's conflicts if we can."""
    from .workspace.checks import check_merged   # no libcst: the common clean case loads fast

    try:
        base, ours, theirs = (text.decode() for text in (texts[1], texts[0], texts[2]))
    except UnicodeDecodeError:
        return status, merged, "not UTF-8, so not merged as Python"
    problem = check_merged(base, ours, theirs, merged.decode(errors="replace")) if status == 0 else None
    if status == 0 and problem is None:
        return 0, merged, ""
    from .workspace.semantic import semantic_merge

    if status == 0:
        result = semantic_merge(base, ours, theirs, path="merged.py")   # e.g. one copy of a helper both added
        if result.merged is not None:
            return 0, result.merged.encode(), ""
        return 1, _whole_file_conflict(ours, base if diff3 else None, theirs, labels), \
            f"git merged cleanly, but {problem}"
    result = semantic_merge(base, ours, theirs, path="merged.py")
    if result.merged is None:
        return 1, merged, result.reason
    return 0, result.merged.encode(), ""


def _whole_file_conflict(ours: str, base: str | None, theirs: str, labels: list[str]) -> bytes:
    """One conflict spanning the file, for a clean text merge that is not a good merge."""
    def ended(text: str) -> str:
        return text if not text or text.endswith("\n") else text + "\n"
    middle = f"||||||| {labels[1]}\n{ended(base)}" if base is not None else ""
    return f"<<<<<<< {labels[0]}\n{ended(ours)}{middle}=======\n{ended(theirs)}>>>>>>> {labels[2]}\n".encode()


def _write(args: argparse.Namespace, merged: bytes) -> None:
    if args.stdout:
        sys.stdout.buffer.write(merged)
        sys.stdout.flush()
        return
    target = args.output or args.ours
    try:
        Path(target).write_bytes(merged)
    except OSError as error:
        raise MergeError(f"cannot write {target!r}: {error.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
