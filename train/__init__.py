"""The training side of seqgan-env: small modules the scripts share, and one thin script per job.

Modules: `cli` (a config dataclass as a command line), `rng` (one random generator per purpose),
`run_folder`, `evaluation`, `diagnostics` (the reward's signal at each evaluation), `plots`, `sources`
(oracles, corpora, pre-trained runs), `config` (the experiment's options and presets), `experiment` (a
run's models, data, environment and checkpoints), `stages` (pre-training, then adversarial rounds with
any `agents.learner.Learner`).

Scripts (`python train/NAME.py --help`): `pretrain.py`, `adversarial.py`, `sb3.py`, `compare.py`,
`sample.py`. No script imports another; each reads top to bottom.
"""
