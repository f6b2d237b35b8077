"""
The remote code of a `scripts/export.py` directory: our GPT (gpt.py, copied beside this file) inside a transformers
PreTrainedModel, for `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)` and `generate()`.
Deliberately as simple as the GPT's plain forward: no KV cache (generate() reruns the prefix), no padding.
"""

from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .gpt import GPT, GPTConfig, rotary_tables


class NanoChatGPTConfig(PretrainedConfig):   # config.json's "gpt" (GPTConfig's fields) is kept as an attribute
    model_type = "nanochat_gpt"


class NanoChatGPT(PreTrainedModel, GenerationMixin):
    config_class = NanoChatGPTConfig

    def __init__(self, config):
        super().__init__(config)
        self.gpt = GPT(GPTConfig(**config.gpt))
        self.post_init()

    def _init_weights(self, module):
        # transformers builds the model on the meta device and loads only the weights file: the rotary tables
        # (derived, not saved) are filled here. Every weight is in the file, so nothing else needs an init.
        if isinstance(module, GPT):
            cfg = module.config
            module.cos, module.sin = rotary_tables(module.cos.size(0), cfg.head_dim, cfg.rope_base, module.cos.device)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("this export has no padding support: pass unpadded rows (one prompt, or equal lengths)")
        return CausalLMOutput(logits=self.gpt(input_ids))

    @classmethod
    def _supports_default_dynamic_cache(cls):   # generate() asks this before it makes a KV cache for the model
        return False

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids, "attention_mask": kwargs.get("attention_mask")}
