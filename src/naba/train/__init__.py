"""Fine-tuning, masked-language-model pretraining and checkpoints. Imports nothing heavy at
package import."""
