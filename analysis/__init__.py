"""What the app and the training CLIs compute *about* a trained model: statistics over
predictions.json (analysis.stats), Grad-CAM and occlusion maps (analysis.explain), and
test-time augmentation (analysis.tta). Imports models/ only."""
