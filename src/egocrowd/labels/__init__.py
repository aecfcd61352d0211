"""People in the loop (#10; docs/review.md, docs/labels.md): what happens to a clip after the
machines are done with it.

- ``review``: the review queue (review items: accept or reject a clip, rule on an appeal, fix
  disagreeing spans), sampling and auto-accept by the campaign's review settings, appeals; the
  ``review`` pipeline stage routes a de-identified clip to a person or accepts it.
- ``tasks``: qualifications, annotation tasks (claimed under a lease, k per clip, gold mixed in
  unmarked), submitting spans, annotators' reliability.
- ``aggregate``: the pure core: matching k annotators' spans by temporal IoU, fusing boundaries,
  the label by Dawid–Skene (crowd-kit), confidence, agreement (Krippendorff's alpha, mean IoU),
  confusion matrices. Takes tables, touches no database.
- ``simulate``: synthetic annotators of known accuracy and confusions (tests, the benchmark).
- ``consensus``: the ``aggregate`` pipeline stage: a clip's answers in, consensus spans out.
- ``audits``: label audits: systematic confusions flagged, shown, spans sent back.
- ``interop``: Label Studio's video timeline format and plain JSONL/CSV of spans, both ways.
"""
