"""t-SNE with a hand-derived gradient: the cost, the affinities, the optimiser.

``tsne_kl`` (Student-t Q) and ``sne_kl`` (Gaussian Q, symmetric SNE) are
``jax.custom_vjp``s whose backward rules are the derived
``∂C/∂yᵢ = 4 Σⱼ (pᵢⱼ − qᵢⱼ)(yᵢ − yⱼ)(1 + ‖yᵢ − yⱼ‖²)⁻¹`` (and ``4 Σⱼ (pᵢⱼ − qᵢⱼ)(yᵢ − yⱼ)``);
``hw.tsne.reference`` holds independent plain-JAX costs to check them against.
"""
from hw.tsne.affinities import conditional_affinities, joint_affinities, pca
from hw.tsne.cost import kl_gradient, sne_kl, tsne_kl
from hw.tsne.optimizer import Embedding, TsneConfig, embed, knn_accuracy, prepare_affinities

__all__ = [
    "Embedding", "TsneConfig", "conditional_affinities", "embed", "joint_affinities",
    "kl_gradient", "knn_accuracy", "pca", "prepare_affinities", "sne_kl", "tsne_kl",
]
