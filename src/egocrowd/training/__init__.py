"""Training (#15, docs/training.md): qualifications with practice items and a test, and workers'
skill levels per task kind. A room between releases and labels: it uses labels' gold scoring and
media's QC; campaigns check its results through the Qualification table and campaigns.levels."""
