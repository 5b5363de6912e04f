#!/usr/bin/env python3
"""Generates a checkout-like tree for the writer benchmark.

usage: gen.py DIR FILES MARKED
FILES files in directories of 50, about 80% YAML (Deployments, values, kustomizations),
the rest Markdown, JSON and shell; MARKED of the YAML files carry one `$imagepolicy` marker
on `reg/team/app:1.0.0` (the value the benchmark rewrites to 1.1.0)."""
import os, random, sys

root, files, marked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
yaml_count = files * 8 // 10
marked_idx = set(rng.sample(range(yaml_count), marked))

DEPLOY = """---
# Deployment {i} of the generated benchmark tree.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{ns}
  labels:
    app.kubernetes.io/name: app-{i}
    app.kubernetes.io/part-of: bench
spec:
  replicas: {rep}
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{i}
    spec:
      containers:
        - name: app
          image: {image}
          ports:
            - containerPort: 8080
          resources:
            limits:
              memory: 128Mi
          env:
            - name: LOG_LEVEL
              value: info
---
apiVersion: v1
kind: Service
metadata:
  name: app-{i}
spec:
  ports:
    - port: 80
      targetPort: 8080
"""

def image(i):
    if i in marked_idx:
        return 'reg/team/app:1.0.0 # {"$imagepolicy": "flux-system:app"}'
    return f'reg/team/other-{i}:1.{i % 7}.0'

def body(i, ext):
    if ext in ('.yaml', '.yml'):
        return DEPLOY.format(i=i, ns=i % 13, rep=1 + i % 3, image=image(i))
    if ext == '.md':
        return f"# Notes {i}\n\n" + "Some prose about the service and its image.\n" * 30
    if ext == '.json':
        return '{"name": "x%d", "items": [%s]}\n' % (i, ", ".join(str(n) for n in range(200)))
    return "#!/bin/sh\necho build %d\n" % i + "make all\n" * 40

y = 0
for n in range(files):
    d = os.path.join(root, f"team{n // 500:03d}", f"svc{n // 50:04d}")
    os.makedirs(d, exist_ok=True)
    if n * 8 // 10 != (n + 1) * 8 // 10 and y < yaml_count:
        ext = '.yaml' if y % 4 else '.yml'
        i = y
        y += 1
    else:
        ext = rng.choice(['.md', '.json', '.sh'])
        i = n
    with open(os.path.join(d, f"f{n:05d}{ext}"), 'w') as f:
        f.write(body(i, ext))
