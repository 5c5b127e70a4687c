"""What GitHub's workflow schema cannot see in .github/workflows/ci.yml
(run by tests/e2e/lint with the venv's ruamel.yaml):

- every `needs` names a job of the workflow;
- the kind matrix runs at least two Kubernetes versions, each a kindest/node
  image pinned by tag and digest, and tests/e2e/run's default is one of them;
- every repository script a step runs exists and is executable.
"""

import os
import re
import sys

from ruamel.yaml import YAML

WORKFLOW = ".github/workflows/ci.yml"
NODE_IMAGE = re.compile(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}")
SCRIPT = re.compile(r"(?<![\w./-])((?:tests|scripts|\.ci)/[\w./-]+)")


def problems():
    with open(WORKFLOW, encoding="utf-8") as f:
        workflow = YAML(typ="safe").load(f)
    jobs = workflow["jobs"]
    for name, job in jobs.items():
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in jobs:
                yield f"job {name} needs {need}, which is not a job"
        for step in job.get("steps", []):
            for script in SCRIPT.findall(step.get("run", "")):
                if not (os.path.isfile(script) and os.access(script, os.X_OK)):
                    yield f"job {name} runs {script}, which is not an executable file"

    kind = jobs.get("kind", {})
    include = kind.get("strategy", {}).get("matrix", {}).get("include", [])
    images = [entry.get("node-image", "") for entry in include]
    if len(set(images)) < 2:
        yield "the kind job must run at least two Kubernetes versions"
    for image in images:
        if not NODE_IMAGE.fullmatch(image):
            yield f"{image!r} is not a kindest/node image pinned by tag and digest"

    with open("tests/e2e/run", encoding="utf-8") as f:
        default = re.search(r"^DEFAULT_NODE_IMAGE=(\S+)$", f.read(), re.M)
    if not default:
        yield "tests/e2e/run sets no DEFAULT_NODE_IMAGE"
    elif default.group(1) not in images:
        yield f"tests/e2e/run's DEFAULT_NODE_IMAGE {default.group(1)} is not in the kind matrix"


def main():
    found = list(problems())
    for problem in found:
        print(f"error: {WORKFLOW}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
