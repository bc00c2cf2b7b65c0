"""Training: datasets, augmentation, the training loop, evaluation, export (docs/training.md).

Public API (import from the submodules):
  training.config.TrainConfig, make_config(preset, overrides)      the one config
  training.train.train(cfg) -> dict, cross_validate(cfg, folds)      runs (checkpoints resume)
  training.train.build_model(cfg, labels), load_checkpoint(path)
  training.export.export_model(...), check_same_logits(model, path)  model files the app loads
  training.report.report(model, out=...)                             metrics as the app sees them
  training.data.load_clips(specs), split_clips(clips, fold), FeatureCache, ClipSet
Command line: python -m training {train,cv,export,report}. Never imports Qt.
"""
