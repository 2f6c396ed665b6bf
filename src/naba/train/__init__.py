"""Fine-tuning, offline encoders and checkpoints. Imports nothing heavy at package import."""
