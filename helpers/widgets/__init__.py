"""Interactive views for the notebooks, one small module per widget.

Each widget is a thin layer of ``ipywidgets`` controls (core widgets only, so it runs on
ipywidgets 7.7 in Colab and 8.x in JupyterLab) over pure functions that turn data into HTML or
a matplotlib figure. The figures are the static twin of each widget, for readers on GitHub.
Each widget's outer box is a ``panel`` (``helpers.widgets.panel``): where no kernel runs, the
notebook shows one line saying what the widget showed, e.g. "Token viewer: ... is 12 tokens".
Below, each widget with the notebooks that use it.

token_viewer      tokens as coloured boxes, ids on hover; compare tokenizers      (01)
window_explorer   input/target sampling windows, stride and overlap              (02)
embedding_explorer  PCA scatter and cosine neighbours of an embedding table  (03, 06)
attention_viewer  attention stages and heads of a model, per layer           (04, 06)
architecture_explorer  parameters, memory and FLOPs of a GPT config; the diagram (05)
training_dashboard  live loss curves, latest sample, tokens/s                (06, 09)
sampling_playground  next-token distribution, temperature, top-k, top-p          (06)
lora_explorer     LoRA parameter counts per GPT-2 size; low-rank approximation   (07)
spam_probe        P(spam) of a message; tokens red/green by their influence      (08)
instruction_chat  the prompt format_input builds; a fine-tuned model's answer    (09)
"""

from .architecture_diagram import draw_gpt_architecture
from .token_viewer import (
    PALETTE,
    TokenPiece,
    compare_html,
    plot_tokens,
    token_pieces,
    token_viewer,
    tokens_html,
)
from .window_explorer import (
    Window,
    plot_windows,
    window_explorer,
    window_stats,
    windows,
    windows_html,
)

__all__ = [
    "draw_gpt_architecture",
    "PALETTE",
    "TokenPiece",
    "compare_html",
    "plot_tokens",
    "token_pieces",
    "token_viewer",
    "tokens_html",
    "Window",
    "plot_windows",
    "window_explorer",
    "window_stats",
    "windows",
    "windows_html",
]

# architecture_explorer: parameters, memory and FLOPs of a GPT config; GPT-2 presets  (05)
from .architecture_explorer import (  # noqa: E402
    architecture_explorer,
    architecture_html,
    architecture_summary,
    plot_parameter_breakdown,
)

# embedding_explorer: word vectors in 2-D by PCA, nearest tokens by cosine  (03, 06)
from .embedding_explorer import (  # noqa: E402
    embedding_explorer,
    nearest_neighbours,
    neighbours_html,
    pca_2d,
    plot_embeddings,
)

__all__ += [
    "architecture_explorer",
    "architecture_html",
    "architecture_summary",
    "plot_parameter_breakdown",
    "embedding_explorer",
    "nearest_neighbours",
    "neighbours_html",
    "pca_2d",
    "plot_embeddings",
]

# attention_viewer: scores -> scaled -> masked -> softmax -> dropout, per layer and head  (04, 06)
from .attention_viewer import (  # noqa: E402
    attention_stages,
    attention_viewer,
    plot_attention_heads,
    plot_attention_stages,
    token_labels,
)

__all__ += [
    "attention_stages",
    "attention_viewer",
    "plot_attention_heads",
    "plot_attention_stages",
    "token_labels",
]

# sampling_playground: temperature, top-k, top-p and the next-token distribution  (06)
from .sampling_playground import (  # noqa: E402
    plot_next_token_probs,
    plot_temperature_effect,
    sampling_playground,
    token_label,
    top_candidates,
)

__all__ += [
    "plot_next_token_probs",
    "plot_temperature_effect",
    "sampling_playground",
    "token_label",
    "top_candidates",
]

# training_dashboard: loss curves redrawn in place, latest sample, tokens per second  (06, 09)
from .training_dashboard import (  # noqa: E402
    TrainingDashboard,
    dashboard_figure,
    sample_html,
    status_html,
    training_dashboard,
)

__all__ += [
    "TrainingDashboard",
    "dashboard_figure",
    "sample_html",
    "status_html",
    "training_dashboard",
]

# lora_explorer: LoRA's trainable parameters per rank and GPT-2 size; what rank r keeps  (07)
from .lora_explorer import (  # noqa: E402
    energy_kept,
    example_weight,
    lora_counts,
    lora_counts_html,
    lora_explorer,
    low_rank_approximation,
    plot_low_rank,
    plot_singular_values,
)

__all__ += [
    "energy_kept",
    "example_weight",
    "lora_counts",
    "lora_counts_html",
    "lora_explorer",
    "low_rank_approximation",
    "plot_low_rank",
    "plot_singular_values",
]

# spam_probe: P(spam) of a message, each token's influence by leaving it out  (08)
from .spam_probe import (  # noqa: E402
    TokenInfluence,
    probe_html,
    spam_probe,
    token_influence,
)

__all__ += [
    "TokenInfluence",
    "probe_html",
    "spam_probe",
    "token_influence",
]

# instruction_chat: the prompt format_input builds, the fine-tuned model's response  (09)
from .instruction_chat import chat_html, instruction_chat  # noqa: E402

__all__ += [
    "chat_html",
    "instruction_chat",
]
