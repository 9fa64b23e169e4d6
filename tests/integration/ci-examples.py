#!/usr/bin/python3
# Checks the CI examples for tests/integration/ci-examples.sh: both YAML files parse, their
# piflash commands are the same as the ones the README quotes, and the artifacts are marked
# as secret-bearing. Writes the batch command and the join script (from each file) to OUTDIR
# for the shell test to run. Needs Debian's python3-yaml.
#   ci-examples.py SOURCE_ROOT OUTDIR
import re
import sys

import yaml

root, out = sys.argv[1:3]
errors = []


def check(ok, what):
    if not ok:
        errors.append(what)


def norm(cmd):
    return " ".join(cmd.replace("\\\n", " ").split())


def piflash_commands(text):
    """The piflash command lines of a shell script (a run: or script: entry)."""
    text = text.replace("\\\n", " ")
    return [norm(line) for line in text.splitlines() if "build/piflash" in line]


gh = yaml.safe_load(open(root + "/examples/github-actions.yml"))
gl = yaml.safe_load(open(root + "/examples/gitlab-ci.yml"))
readme = open(root + "/README.md").read()

gh_runs = [s["run"] for job in gh["jobs"].values() for s in job["steps"] if "run" in s]
gl_runs = [line for name, job in gl.items() if isinstance(job, dict) and "script" in job
           for line in job["script"]]
m = re.search(r"<!-- ci-piflash-commands -->(.*?)<!-- /ci-piflash-commands -->", readme, re.S)
check(m is not None, "README: no <!-- ci-piflash-commands --> block")
readme_cmds = piflash_commands(m.group(1)) if m else []

gh_cmds = [c for r in gh_runs for c in piflash_commands(r)]
gl_cmds = [c for r in gl_runs for c in piflash_commands(r)]
check(gh_cmds != [], "github-actions.yml runs no piflash command")
check(gh_cmds == gl_cmds, "github-actions.yml and gitlab-ci.yml differ: %r vs %r" % (gh_cmds, gl_cmds))
check(gh_cmds == readme_cmds, "github-actions.yml and the README differ: %r vs %r" % (gh_cmds, readme_cmds))
for c in gh_cmds:
    check("--sha256" in c, "no --sha256 in %r" % c)
    check("--shard" in c, "no --shard in %r" % c)
for text in (open(root + "/examples/github-actions.yml").read(),
             open(root + "/examples/gitlab-ci.yml").read(), readme):
    check("example.invalid" not in text, "a placeholder URL (example.invalid) is left")

# Secret-bearing artifacts: short retention, not public, the seed from the CI's secrets.
for name, job in gh["jobs"].items():
    check(job.get("if") == "github.event.repository.private",
          "github job %s runs in public repositories" % name)
    for s in job["steps"]:
        if s.get("uses", "").startswith("actions/upload-artifact"):
            days = s.get("with", {}).get("retention-days")
            check(isinstance(days, int) and days <= 7,
                  "github job %s keeps artifacts %r days" % (name, days))
check("secrets." in gh["jobs"]["build"]["env"].get("PIFLASH_INSTANCE_ID_SEED", ""),
      "github: the seed does not come from secrets")
for name, job in gl.items():
    if isinstance(job, dict) and "artifacts" in job:
        a = job["artifacts"]
        check(a.get("access") == "developer", "gitlab job %s: artifacts not access: developer" % name)
        check(re.fullmatch(r"[1-7] days?", str(a.get("expire_in", ""))) is not None,
              "gitlab job %s: artifacts expire_in %r" % (name, a.get("expire_in")))
check("PIFLASH_INSTANCE_ID_SEED" not in gl.get("variables", {}),
      "gitlab: the seed is written in the file")
check(gl["build"].get("parallel") == 4 and gh["jobs"]["build"]["strategy"]["matrix"]["shard"] == [1, 2, 3, 4],
      "not 4 runners")

if errors:
    for e in errors:
        print("ci-examples: " + e, file=sys.stderr)
    sys.exit(1)

# For the shell test: the command, and each join script (the step after `mkdir cluster`).
open(out + "/batch.sh", "w").write(gh_cmds[0] + "\n")
gh_join = [s["run"] for s in gh["jobs"]["join"]["steps"] if "mkdir cluster" in s.get("run", "")]
gl_join = [line for line in gl["join"]["script"] if "mkdir cluster" in line]
open(out + "/join-github.sh", "w").write(gh_join[0])
open(out + "/join-gitlab.sh", "w").write(gl_join[0])
open(out + "/vars.sh", "w").write(
    "IMAGE_URL_EXAMPLE='%s'\nIMAGE_SHA256_EXAMPLE='%s'\n" % (gh["env"]["IMAGE_URL"], gh["env"]["IMAGE_SHA256"]))
print("ci-examples: %d piflash command(s), the same in both files and the README" % len(gh_cmds))
