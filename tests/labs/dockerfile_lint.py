#!/usr/bin/python3
"""A small Dockerfile linter for this repository's images (hadolint is not packaged in Debian).

It checks a subset of hadolint's rules, plus what the labs rely on:
  - FROM names ${BASE_IMAGE}, declared by an ARG before it with a pinned default (no :latest)
    (hadolint DL3006/DL3007);
  - every `apt-get install` has -y and --no-install-recommends, follows `apt-get update` in the
    same RUN and is followed by `rm -rf /var/lib/apt/lists/*` (DL3009, DL3014, DL3015);
  - no ADD (use COPY; DL3020), no sudo (DL3004), no `curl|wget ... | sh`, no download of
    anything but packages (the images build from distribution archives only);
  - ENTRYPOINT and CMD in JSON form (DL3025); a HEALTHCHECK; OCI labels;
  - no secret in ENV/ARG (PASSWORD, TOKEN, SECRET, KEY=...);
  - no comment line inside a RUN continuation (the classic builder of Docker 20.10 and
    docker-compose 1.29 warns, later versions may refuse);
  - COPY sources exist in the build context and are not excluded by .dockerignore;
  - the final USER is not root, unless the image is listed as starting as root on purpose.
Usage: dockerfile_lint.py DOCKERFILE:CONTEXT[:root-ok] ...   Exit status 1 on any finding.
"""
import fnmatch
import os
import re
import sys

findings = []


def finding(path, line, message):
    findings.append(f"{path}:{line}: {message}")


def logical_lines(path):
    """(first line number, instruction text) with continuations joined; reports comments in them."""
    out = []
    current, start = None, 0
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            stripped = line.strip()
            if current is None:
                if not stripped or stripped.startswith("#"):
                    continue
                current, start = "", number
            elif stripped.startswith("#"):
                finding(path, number, "comment line inside a continued instruction")
                continue
            elif not stripped:
                finding(path, number, "empty line inside a continued instruction")
                continue
            if line.rstrip().endswith("\\"):
                current += line.rstrip()[:-1] + " "
            else:
                out.append((start, current + line))
                current = None
    if current is not None:
        finding(path, start, "instruction continues past the end of the file")
    return out


def dockerignore_patterns(context):
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    patterns = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line.rstrip("/"))
    return patterns


def ignored(rel, patterns):
    parts = rel.split("/")
    for pattern in patterns:
        pattern = pattern.lstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.replace("**/", "")):
                return True
    return False


def lint(dockerfile, context, root_ok):
    lines = logical_lines(dockerfile)
    patterns = dockerignore_patterns(context)
    args_before_from = {}
    seen_from = False
    stages = set()
    user = "root"
    has_healthcheck = has_labels = False
    for number, text in lines:
        instruction, _, rest = text.strip().partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG" and not seen_from:
            name, _, default = rest.partition("=")
            args_before_from[name] = default
        elif instruction == "FROM":
            seen_from = True
            user = "root"
            words = rest.split()
            image = words[0]
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            if image.startswith("${"):
                name = image[2:image.index("}")]
                default = args_before_from.get(name)
                if default is None:
                    finding(dockerfile, number, f"FROM {image}: no ARG {name} before the first FROM")
                elif not default or default.endswith(":latest") or ":" not in default:
                    finding(dockerfile, number, f"ARG {name} default '{default}' is not a pinned tag")
            elif image not in stages and image != "scratch":
                if image.endswith(":latest") or ":" not in image.split("/")[-1]:
                    finding(dockerfile, number, f"FROM {image}: pin a tag, not latest")
        elif instruction == "RUN":
            if re.search(r"\bsudo\b", rest):
                finding(dockerfile, number, "sudo in RUN")
            if re.search(r"(curl|wget)[^|;&]*\|\s*(ba)?sh", rest):
                finding(dockerfile, number, "piping a download into a shell")
            if re.search(r"\b(curl|wget)\b[^;&|]*https?://", rest):
                finding(dockerfile, number, "downloads from the network: install packages instead")
            for match in re.finditer(r"apt-get\s+install\b", rest):
                before, after = rest[: match.start()], rest[match.end():]
                segment = re.split(r"&&|;", after)[0]
                if "apt-get update" not in before:
                    finding(dockerfile, number, "apt-get install without apt-get update in the same RUN")
                if not re.search(r"(^|\s)(-y|--yes|-qq?y)\b", segment):
                    finding(dockerfile, number, "apt-get install without -y")
                if "--no-install-recommends" not in segment:
                    finding(dockerfile, number, "apt-get install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists/*" not in after:
                    finding(dockerfile, number, "apt lists not removed (rm -rf /var/lib/apt/lists/*) after apt-get install")
        elif instruction == "ADD":
            finding(dockerfile, number, "ADD: use COPY")
        elif instruction == "COPY":
            words = [w for w in rest.split() if not w.startswith("--")]
            if any(w.startswith("--from") for w in rest.split()):
                continue
            for source in words[:-1]:
                full = os.path.join(context, source)
                if not os.path.exists(full):
                    finding(dockerfile, number, f"COPY {source}: not in the build context {context}")
                elif ignored(os.path.normpath(source), patterns):
                    finding(dockerfile, number, f"COPY {source}: excluded by .dockerignore")
        elif instruction in ("ENTRYPOINT", "CMD"):
            if not rest.startswith("["):
                finding(dockerfile, number, f"{instruction} in shell form: use the JSON form")
        elif instruction == "HEALTHCHECK":
            has_healthcheck = True
        elif instruction == "LABEL":
            if "org.opencontainers.image." in rest:
                has_labels = True
        elif instruction == "USER":
            user = rest.split(":")[0]
        elif instruction in ("ENV", "ARG"):
            if re.search(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY)[A-Z_]*\s*=\s*\S", rest, re.I):
                finding(dockerfile, number, f"{instruction} looks like it holds a secret")
    if not has_healthcheck:
        finding(dockerfile, 0, "no HEALTHCHECK")
    if not has_labels:
        finding(dockerfile, 0, "no org.opencontainers.image.* LABEL")
    if user in ("root", "0") and not root_ok:
        finding(dockerfile, 0, "the image runs as root: add a USER")


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    for spec in argv:
        parts = spec.split(":")
        lint(parts[0], parts[1] if len(parts) > 1 else os.path.dirname(parts[0]) or ".",
             len(parts) > 2 and parts[2] == "root-ok")
    for f in findings:
        print(f)
    print(f"dockerfile_lint: {len(argv)} Dockerfile(s), {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
