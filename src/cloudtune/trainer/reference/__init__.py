"""The reference trainer: a LoRA adapter on a tiny text-conditioned image model, trained with
the flow-matching loss. Small enough for a CPU, real enough that its loss goes down."""
