#!/usr/bin/env python3
"""Checks every resource, data and provider block under terraform/ against the schema of
the provider version the environments pin (terraform/envs/*/versions.tf), offline.

`terraform validate` needs the providers' plugins from the Terraform registry, which the
checks cannot reach, so the schemas come from the CDKTF prebuilt provider packages on npm
instead: each release is generated from one provider version (package.json's
cdktf.provider.version), and its .jsii assembly lists every resource's and data source's
config interface, nested block by nested block. Each property's docs link to the
registry with the Terraform name as the anchor (`.../docs/resources/launch_template#ebs`),
so the snake_case names are read, not guessed from camelCase. A config interface holds
only what may be set: computed-only attributes are not in it, so setting one fails here.

A block fails on: a resource or data type the provider does not have, an argument or
nested block it does not take (recursively, through dynamic blocks' content and object
literals of nested attributes), a missing required one, and an ignore_changes entry that
names no argument. Providers with no CDKTF package are skipped, by name.

With --locks it checks instead, offline, that each environment's .terraform.lock.hcl
locks every provider the environment and its modules require, at exactly the pinned
version, with at least one zh: checksum, and nothing else (check_locks).

Usage: tf-schema-check.py --cache DIR [TERRAFORM_DIR]   (python-hcl2's venv; npm on PATH)
       tf-schema-check.py --locks [TERRAFORM_DIR]
The extracted schemas are cached as DIR/<package>-<version>.v<FORMAT>.json.
"""

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict

import hcl2
from lark import Token, Tree

# Terraform provider source -> its CDKTF package and, per provider version, the package
# release generated from it (`npm view '@cdktf/provider-aws@>=20' cdktf.provider.version`).
# A pinned version missing here fails the check: add its release.
CDKTF = {
    "hashicorp/aws": ("@cdktf/provider-aws", {"5.100.0": "20.1.0"}),
    "hashicorp/google": ("@cdktf/provider-google", {"6.41.0": "16.3.0"}),
    "hashicorp/random": ("@cdktf/provider-random", {"3.6.3": "11.0.3"}),
    "hashicorp/tls": ("@cdktf/provider-tls", {"4.0.6": "10.0.1"}),
    "hashicorp/helm": ("@cdktf/provider-helm", {"2.17.0": "11.0.0", "3.0.2": "12.0.1", "3.1.1": "12.1.2"}),
    "hashicorp/kubernetes": ("@cdktf/provider-kubernetes", {"2.37.1": "12.0.0", "2.38.0": "12.1.1"}),
}

META = {
    "resource": {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"},
    "data": {"count", "for_each", "depends_on", "provider", "lifecycle"},
    "provider": {"alias"},
}
LIFECYCLE = {"create_before_destroy", "prevent_destroy", "ignore_changes", "replace_triggered_by",
             "precondition", "postcondition"}
DYNAMIC = {"for_each", "iterator", "labels", "content"}
FORMAT = 1  # of the cached schemas: bump it when extract() changes what it writes
SPELLING = {}  # lowercased provider source -> as the configuration writes it
DOC_LINK = re.compile(r"\{@link https://registry\.terraform\.io/providers/([^/\s]+/[^/\s]+)/([^/\s]+)/docs"
                      r"(?:/(resources|data-sources)/[^\s#]+)?(?:#(\S+))? [^}]*\}")


# --- schemas from the CDKTF package ------------------------------------------------------

def snake(name):
    """cdktf's camelCase property name back to the Terraform name (ipv6CidrBlock -> ipv6_cidr_block)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def extract(assembly, source, version):
    """The schema of one provider from its .jsii assembly:
    {"resource": {type: fqn}, "data": {type: fqn}, "provider": fqn, "types": {fqn: block},
     "computed": {fqn: [computed-only attribute]}},
    block = {name: {"required": bool, "nested": fqn or None}} (None: a value, not a block)."""
    types = assembly["types"]
    out = {"source": source, "version": version, "resource": {}, "data": {}, "provider": None, "types": {},
           "computed": {}}

    def nested(t):
        """The config interface a property's type holds (alone, in a list, or in a union
        with IResolvable), or None for a value (primitive, list or map of them, or a map
        of objects, whose keys are free)."""
        if "union" in t:
            found = [n for n in map(nested, t["union"]["types"]) if n]
            return found[0] if found else None
        if "collection" in t:
            c = t["collection"]
            return nested(c["elementtype"]) if c["kind"] == "array" else None
        fqn = t.get("fqn", "")
        info = types.get(fqn)
        return fqn if info and info["kind"] == "interface" and info.get("datatype") else None

    def block(fqn):
        if fqn in out["types"]:
            return
        out["types"][fqn] = {}
        entries = {}
        for p in types[fqn].get("properties", []):
            docs = p.get("docs", {})
            # jsii files a doc line starting with "@word" (e.g. "@pattern: ...") under custom.
            text = " ".join([docs.get("summary", ""), docs.get("remarks", ""), *docs.get("custom", {}).values()])
            link = DOC_LINK.search(text)
            if link and link.group(4):
                name = link.group(4)
            else:  # a description holding "*/" cuts the docs short: undo cdktf's camelCase
                name = snake(p["name"])
            sub = nested(p["type"])
            entries[name] = {"required": not p.get("optional", False), "nested": sub}
            if sub:
                block(sub)
        out["types"][fqn] = entries

    kinds = {"cdktf.TerraformResource": "resource", "cdktf.TerraformDataSource": "data",
             "cdktf.TerraformProvider": "provider"}
    for fqn, info in types.items():
        kind = kinds.get(info.get("base")) if info["kind"] == "class" else None
        if not kind:
            continue
        link = DOC_LINK.search(info["docs"]["summary"])
        if not link or link.group(1).lower() != source or link.group(2) != version:
            raise SystemExit(f"{fqn}: documented as {link and link.group(0)}, not {source} {version}")
        config = info["initializer"]["parameters"][-1]["type"]["fqn"]
        block(config)
        # The class's read-only getters beyond the config: the computed-only attributes.
        computed = {snake(p["name"]) for p in info.get("properties", [])
                    if p.get("immutable") and not p.get("static") and not p["name"].endswith("Input")}
        out["computed"][config] = sorted(computed - set(out["types"][config]))
        name = re.search(r" ([\w-]+)\}", link.group(0)).group(1)
        if kind == "provider":
            out["provider"] = config
        else:
            out[kind][name] = config
    if not out["resource"] or out["provider"] is None:
        raise SystemExit(f"{source} {version}: no resources or no provider in the assembly")
    return out


def load_schema(cache, source, version):
    """The schema of SOURCE at VERSION, from the cache or extracted from its npm package."""
    package, releases = CDKTF[source]
    release = releases[version]
    path = os.path.join(cache, f"{package.replace('/', '+')}-{release}.v{FORMAT}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    os.makedirs(cache, exist_ok=True)
    print(f"   extracting {source} {version} from {package}@{release} (npm; cached afterwards)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "pack", "--silent", "--no-audit", "--no-fund", f"{package}@{release}"],
                           cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SystemExit(f"npm pack {package}@{release} failed ({e}): npm and its registry are needed once")
        tgz = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".tgz"))
        with tarfile.open(tgz) as tar:
            manifest = json.load(tar.extractfile("package/package.json"))
            generated = manifest.get("cdktf", {}).get("provider", {})
            if generated.get("version") != version or not generated.get("name", "").endswith(source):
                raise SystemExit(f"{package}@{release} was generated from {generated}, not {source} {version}: "
                                 "fix the CDKTF table")
            schema = extract(json.load(tar.extractfile("package/.jsii")), source, version)
    schema["package"] = f"{package}@{release}"
    with open(path + ".tmp", "w") as f:
        json.dump(schema, f, separators=(",", ":"))
    os.replace(path + ".tmp", path)  # several checkouts may share the cache
    return schema


# --- the configuration ----------------------------------------------------------------------

def name_of(node):
    """A block's type, an attribute's name, or a label/key: the text of a simple node."""
    if isinstance(node, Token):
        return str(node)
    if node.data in ("identifier", "keyword"):
        return str(node.children[0])
    if node.data == "string":
        return "".join(str(t) for p in node.children if isinstance(p, Tree) for t in p.children)
    if node.data in ("expr_term", "object_elem_key") and len(node.children) == 1:
        return name_of(node.children[0])
    return None


def items(body):
    """(kind, name, labels, node) for each attribute and block of a body."""
    for node in body.children:
        if isinstance(node, Tree) and node.data in ("attribute", "block"):
            head = [c for c in node.children if isinstance(c, Tree)]
            if node.data == "attribute":
                yield "attribute", name_of(head[0]), [], node
            else:
                yield "block", name_of(head[0]), [name_of(h) for h in head[1:-1]], node


def body_of(block):
    return next(c for c in block.children if isinstance(c, Tree) and c.data == "body")


def value_of(attribute):
    return [c for c in attribute.children if isinstance(c, Tree)][-1]


def literal_objects(expr):
    """The object literals an attribute's value is made of: {..} or [{..}, ..]; none for any
    other expression (a reference, a function, a for expression: not checked)."""
    while isinstance(expr, Tree) and expr.data == "expr_term" and len(expr.children) == 1:
        expr = expr.children[0]
    if not isinstance(expr, Tree):
        return []
    if expr.data == "object":
        return [expr]
    if expr.data == "tuple":
        return [o for e in expr.children if isinstance(e, Tree) for o in literal_objects(e)]
    return []


def first_name(expr):
    """The root name of a traversal (ignore_changes = [scaling_config[0].desired_size])."""
    for node in expr.iter_subtrees_topdown():
        if node.data in ("identifier", "keyword"):
            return name_of(node)
    return None


def module_info(root, problems):
    """Per directory: its files' lark trees, its required_providers (local name -> source),
    pinned versions (source -> version, from the terraform block) and local module calls."""
    dirs = defaultdict(lambda: {"files": [], "sources": {}, "pins": {}, "calls": []})
    for top, subdirs, files in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))  # .terraform/
        for f in sorted(files):
            if not f.endswith(".tf"):
                continue
            path = os.path.join(top, f)
            with open(path) as fh:
                text = fh.read()
            d = dirs[top]
            try:
                d["files"].append((path, hcl2.parses_to_tree(text)))
                # The values (versions, module sources) are read from the dict form, where there are any.
                parsed = hcl2.loads(text) if re.search(r"^(terraform|module)\b", text, re.M) else {}
            except Exception as e:  # the parser raises several types
                problems.append(f"{path}: does not parse: {str(e).splitlines()[0]}")
                continue
            for terraform in parsed.get("terraform", []):
                for required in terraform.get("required_providers", []):
                    for local, spec in required.items():
                        if not isinstance(spec, dict) or local.startswith("__"):
                            continue
                        written = spec.get("source", f'"hashicorp/{local}"').strip('"')
                        # Source addresses are case-insensitive; the messages keep the spelling.
                        source = re.sub(r"^registry\.terraform\.io/", "", written.lower())
                        SPELLING[source] = written
                        d["sources"][local] = source
                        version = str(spec.get("version", "")).strip('"')
                        if re.fullmatch(r"=?\s*\d+\.\d+\.\d+", version):
                            d["pins"][source] = version.lstrip("= ")
            for module in parsed.get("module", []):
                for spec in module.values():
                    source = str(spec.get("source", "")).strip('"')
                    if source.startswith("./") or source.startswith("../"):
                        d["calls"].append(os.path.normpath(os.path.join(top, source)))
    return dirs


def environments(root, dirs):
    return sorted(d for d in dirs if os.path.dirname(d) == os.path.join(root, "envs"))


def reachable(env, dirs):
    """The directories ENV is made of: itself and every local module it calls, transitively."""
    todo, seen = [env], set()
    while todo:
        d = todo.pop()
        if d in seen or d not in dirs:
            continue
        seen.add(d)
        todo.extend(dirs[d]["calls"])
    return sorted(seen)


def versions_by_dir(root, dirs):
    """Directory -> source -> the versions to check it against: the pins of every
    environment (terraform/envs/*) that reaches it through module calls; for a directory
    no environment calls, every version pinned anywhere."""
    reach = defaultdict(lambda: defaultdict(set))
    envs = environments(root, dirs)
    for env in envs:
        for d in reachable(env, dirs):
            for source, version in dirs[env]["pins"].items():
                reach[d][source].add(version)
    everywhere = defaultdict(set)
    for env in envs:
        for source, version in dirs[env]["pins"].items():
            everywhere[source].add(version)
    return {d: (reach[d] if d in reach else everywhere) for d in dirs}


# --- the lock files ------------------------------------------------------------------------

LOCK_HASH = re.compile(r"zh:[0-9a-f]{64}|h1:[A-Za-z0-9+/]{43}=")


def check_locks(root, dirs):
    """Problems of the environments' .terraform.lock.hcl files, and a line per environment:
    each exists and locks every provider the environment or a module it calls requires, at
    the version its versions.tf pins (constraints: that pin), with well-formed, sorted
    hashes, at least one of them a zh: (the registry's checksum of a platform's zip); it
    locks nothing else. Every required provider must be pinned exactly in the env."""
    problems, lines = [], []
    envs = environments(root, dirs)
    if not envs:
        problems.append(f"{root}: no environment under envs/")
    for env in envs:
        path = os.path.join(env, ".terraform.lock.hcl")
        try:
            with open(path) as f:
                lock = hcl2.load(f)
        except FileNotFoundError:
            problems.append(f"{path}: missing: an environment commits its providers' checksums")
            continue
        except Exception as e:  # the parser raises several types
            problems.append(f"{path}: does not parse: {str(e).splitlines()[0]}")
            continue
        # address -> (version, constraints, hashes), python-hcl2 keeping the strings' quotes
        locked = {address.strip('"').lower(): (str(body.get("version", "")).strip('"'),
                                               str(body.get("constraints", "")).strip('"'),
                                               [str(h).strip('"') for h in body.get("hashes") or []])
                  for block in lock.get("provider", []) for address, body in block.items()
                  if not address.startswith("__")}
        required = defaultdict(list)
        for d in reachable(env, dirs):
            for source in dirs[d]["sources"].values():
                required[source].append(os.path.relpath(d, root))
        for source, where in sorted(required.items()):
            name, pin = SPELLING.get(source, source), dirs[env]["pins"].get(source)
            entry = locked.get(f"registry.terraform.io/{source}")
            if pin is None:
                problems.append(f"{env}/versions.tf: {name} (required by {', '.join(where)}) is not pinned exactly")
            if entry is None:
                problems.append(f"{path}: no entry for {name}, which {', '.join(where)} require")
                continue
            version, constraints, hashes = entry
            if pin is not None and (version, constraints) != (pin, pin):
                problems.append(f"{path}: {name} is locked at {version} (constraints {constraints!r}), "
                                f"not at the pinned {pin}")
            bad = [h for h in hashes if not LOCK_HASH.fullmatch(h)]
            if bad:
                problems.append(f"{path}: {name} has malformed hashes {bad}")
            if not any(h.startswith("zh:") for h in hashes):
                problems.append(f"{path}: {name} has no zh: hash, so terraform init cannot check a download")
            if hashes != sorted(hashes):
                problems.append(f"{path}: {name}'s hashes are not sorted as terraform writes them")
        for address in sorted(set(locked) - {f"registry.terraform.io/{s}" for s in required}):
            problems.append(f"{path}: locks {address}, which nothing in {os.path.relpath(env, root)} requires")
        lines.append(f"   {os.path.relpath(path, root)}: " + ", ".join(
            f"{SPELLING.get(s, s)} {locked[f'registry.terraform.io/{s}'][0]}"
            for s in sorted(required) if f"registry.terraform.io/{s}" in locked))
    return problems, lines


# --- the check -----------------------------------------------------------------------------

class Checker:
    def __init__(self, schema, path):
        self.schema, self.path, self.problems = schema, path, []

    def fail(self, node, message, wrong=None, valid=()):
        near = difflib.get_close_matches(wrong, sorted(valid), n=3, cutoff=0.6) if wrong else []
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        self.problems.append(f"{self.path}:{node.meta.line}: {message}{hint} "
                             f"({self.schema['source']} {self.schema['version']})")

    def block(self, block, fqn, where, meta=frozenset()):
        """Checks a block's body against the config interface FQN, META being the
        meta-arguments it may hold besides."""
        entries, seen = self.schema["types"][fqn], set()
        for kind, name, labels, node in items(body_of(block)):
            if name in meta:
                if name == "lifecycle" and kind == "block":
                    self.lifecycle(body_of(node), entries, where)
                continue
            if kind == "block" and name == "dynamic":
                name = labels[0] if labels else ""
                generated = self.entry(node, fqn, name, where, block=True)
                for k, n, _, inner in items(body_of(node)):
                    if k == "block" and n == "content" and generated:
                        self.block(inner, generated, f"{where}.{name}")
                    elif n not in DYNAMIC:
                        self.fail(inner, f'{where}: dynamic "{name}" takes no "{n}"', n, DYNAMIC)
                seen.add(name)
                continue
            nested = self.entry(node, fqn, name, where, block=(kind == "block"))
            seen.add(name)
            if nested and kind == "block":
                self.block(node, nested, f"{where}.{name}")
            elif nested:
                for obj in literal_objects(value_of(node)):
                    self.object(obj, nested, f"{where}.{name}")
            elif kind == "block" and name in entries:
                self.fail(node, f'{where}: "{name}" is an argument, not a block: write {name} = ...')
        for name, entry in sorted(entries.items()):
            if entry["required"] and name not in seen:
                self.fail(block, f'{where}: required "{name}" is missing')

    def object(self, obj, fqn, where):
        """An object literal given to a nested attribute (or to a block in attribute syntax)."""
        keys = set()
        for elem in (c for c in obj.children if isinstance(c, Tree) and c.data == "object_elem"):
            key = name_of(elem.children[0])
            if key is None:
                return  # a computed key: nothing more to check
            keys.add(key)
            nested = self.entry(elem, fqn, key, where, block=False)
            if nested:
                for inner in literal_objects(elem.children[-1]):
                    self.object(inner, nested, f"{where}.{key}")
        for name, entry in sorted(self.schema["types"][fqn].items()):
            if entry["required"] and name not in keys:
                self.fail(obj, f'{where}: required "{name}" is missing')

    def entry(self, node, fqn, name, where, block):
        """The nested interface of NAME in FQN's block (None for a value); reports an unknown name."""
        entries = self.schema["types"][fqn]
        if name not in entries:
            if name in self.schema["computed"].get(fqn, ()):
                self.fail(node, f'{where}: "{name}" is computed by the provider, it cannot be set')
            else:
                what = "nested block" if block else "argument"
                self.fail(node, f'{where}: unknown {what} "{name}"', name, entries)
            return None
        return entries[name]["nested"]

    def lifecycle(self, body, entries, where):
        for kind, name, _, node in items(body):
            if name not in LIFECYCLE:
                self.fail(node, f'{where}: lifecycle takes no "{name}"', name, LIFECYCLE)
            elif name == "ignore_changes":
                expr = value_of(node)
                refs = [e for e in expr.iter_subtrees() if e.data == "expr_term"
                        and e.children and isinstance(e.children[0], Tree)
                        and e.children[0].data in ("identifier", "get_attr_expr_term", "index_expr_term")]
                for ref in refs:
                    root = first_name(ref)
                    if root and root != "all" and root not in entries:
                        self.fail(node, f'{where}: ignore_changes names no argument "{root}"', root, entries)


def check_block(cache, schemas, versions, sources, path, block):
    """Problems of one resource, data or provider block; (source, version) of each schema
    it was checked against, or the source it was skipped for (no CDKTF package)."""
    kind, labels, node = block
    rtype, problems, checked = labels[0], [], []
    local = rtype if kind == "provider" else rtype.split("_", 1)[0]
    for k, n, _, attr in items(body_of(node)):
        if kind != "provider" and k == "attribute" and n == "provider":
            local = first_name(value_of(attr)) or local  # provider = google-beta.west
    source = sources.get(local, f"hashicorp/{local}")
    at = f"{path}:{node.meta.line}"
    if source not in CDKTF:
        if source.startswith("hashicorp/"):
            problems.append(f"{at}: {source} is not in the CDKTF table of scripts/tf-schema-check.py: "
                            "add its @cdktf package")
        return problems, [], source
    if not versions.get(source):
        problems.append(f'{at}: {source} is pinned exactly (version = "x.y.z") in no terraform/envs/*/versions.tf')
    for version in sorted(versions.get(source, ())):
        if version not in CDKTF[source][1]:
            problems.append(f"{at}: {source} {version} is not in the CDKTF table of scripts/tf-schema-check.py: "
                            "add the @cdktf release generated from it")
            continue
        if (source, version) not in schemas:
            schemas[(source, version)] = load_schema(cache, source, version)
        schema = schemas[(source, version)]
        checker = Checker(schema, path)
        if kind == "provider":
            fqn, where = schema["provider"], f"provider.{rtype}"
        else:
            fqn, where = schema[kind].get(rtype), ("data." if kind == "data" else "") + f"{rtype}.{labels[1]}"
            if fqn is None:
                what = "resource type" if kind == "resource" else "data source"
                checker.fail(node, f'unknown {what} "{rtype}"', rtype, schema[kind])
        if fqn:
            checker.block(node, fqn, where, META[kind])
        problems += checker.problems
        checked.append((source, version))
    return problems, checked, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", help="where the extracted schemas are kept (the schema check)")
    parser.add_argument("--locks", action="store_true", help="check the environments' lock files instead")
    parser.add_argument("root", nargs="?", default="terraform")
    args = parser.parse_args()
    if not args.locks and not args.cache:
        parser.error("--cache is needed unless --locks")

    schemas, problems = {}, []
    dirs = module_info(args.root, problems)
    if args.locks:
        found, lines = check_locks(args.root, dirs)
        for p in dict.fromkeys(problems + found):
            print(p, file=sys.stderr)
        print("\n".join(lines))
        sys.exit(1 if problems or found else 0)
    versions = versions_by_dir(args.root, dirs)
    checked, skipped = defaultdict(int), defaultdict(int)
    for d, info in sorted(dirs.items()):
        for path, tree in info["files"]:
            blocks = list(items(tree.children[0]))
            # A check block may scope a data source of its own.
            blocks += [b for c in blocks if c[:2] == ("block", "check") for b in items(body_of(c[3]))]
            for block in blocks:
                if block[0] == "block" and block[1] in ("resource", "data", "provider"):
                    found, against, skip = check_block(args.cache, schemas, versions[d], info["sources"], path,
                                                       block[1:])
                    problems += found
                    for key in against:
                        checked[key] += 1
                    if skip:
                        skipped[skip] += 1
    for p in dict.fromkeys(problems):
        print(p, file=sys.stderr)
    done = ", ".join(f"{s} {v} ({schemas[(s, v)]['package']}): {n}" for (s, v), n in sorted(checked.items()))
    print(f"   blocks checked against their provider's schema: {done or 'none'}")
    for source, n in sorted(skipped.items()):
        print(f"   skipped {SPELLING.get(source, source)}: no CDKTF package, {n} blocks not checked")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
