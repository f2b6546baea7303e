"""train: params mapped onto PEFT/TRL, LoRA SFT, checkpoints, dvclive metrics, the model card,
multi-GPU launch. Imports only seedtune.core."""
