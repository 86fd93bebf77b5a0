"""hw.tsne: the hand-derived KL gradients against autodiff, the affinities, the optimiser."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import jax
import jax._src.api as jax_api
import jax.numpy as jnp
import numpy as np
import pytest

import hw.tsne
from hw.tsne import affinities, cost

AUTODIFF_NAMES = {"grad", "value_and_grad", "vjp", "jvp", "linearize", "linear_transpose",
                  "jacfwd", "jacrev", "hessian"}


def _joint_p(n, seed=0):
  rng = np.random.default_rng(seed)
  raw = rng.random((n, n)) + 0.1
  raw = raw + raw.T
  np.fill_diagonal(raw, 0.0)
  return raw / raw.sum()


def test_backward_rule_is_the_papers_formula():
  rng = np.random.default_rng(1)
  y = rng.standard_normal((9, 2))
  p = _joint_p(9, seed=1)
  diff = y[:, None, :] - y[None, :, :]
  inverse = 1.0 / (1.0 + np.sum(diff ** 2, axis=-1))
  np.fill_diagonal(inverse, 0.0)
  q = inverse / inverse.sum()
  formula = 4.0 * np.einsum("ij,ijk->ik", (p - q) * inverse, diff)
  gaussian = np.exp(-np.sum(diff ** 2, axis=-1))
  np.fill_diagonal(gaussian, 0.0)
  q_gauss = gaussian / gaussian.sum()
  formula_gauss = 4.0 * np.einsum("ij,ijk->ik", p - q_gauss, diff)
  with jax.enable_x64(True):
    grad_t = jax.grad(hw.tsne.tsne_kl)(jnp.asarray(y), jnp.asarray(p))
    grad_g = jax.grad(hw.tsne.sne_kl)(jnp.asarray(y), jnp.asarray(p))
  np.testing.assert_allclose(grad_t, formula, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(grad_g, formula_gauss, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kernel, kl", [("student_t", hw.tsne.tsne_kl),
                                        ("gaussian", hw.tsne.sne_kl)])
def test_optimiser_gradient_is_the_custom_vjp_gradient(kernel, kl):
  rng = np.random.default_rng(2)
  y_np, p_np = rng.standard_normal((12, 2)), _joint_p(12, seed=2)
  with jax.enable_x64(True):
    y, p = jnp.asarray(y_np), jnp.asarray(p_np)
    vjp_gradient = np.asarray(jax.grad(kl)(y, p))
    loop_gradient = np.asarray(cost.kl_gradient(y, p, kernel=kernel, p_is_symmetric=True))
    exaggerated = np.asarray(cost.kl_gradient(y, p, kernel=kernel, exaggeration=12.0))
  np.testing.assert_allclose(loop_gradient, vjp_gradient, rtol=1e-12, atol=1e-15)
  # Early exaggeration scales the attractive term only: the difference from α = 1 is
  # (α − 1) · 4 Σⱼ pᵢⱼ wᵢⱼ (yᵢ − yⱼ), with w = (1 + d)⁻¹ (Student-t) or 1 (Gaussian).
  diff = y_np[:, None, :] - y_np[None, :, :]
  weight = 1.0 / (1.0 + np.sum(diff ** 2, axis=-1)) if kernel == "student_t" else 1.0
  attraction = 4.0 * np.einsum("ij,ijk->ik", p_np * weight, diff)
  np.testing.assert_allclose(exaggerated - vjp_gradient, 11.0 * attraction, rtol=1e-10,
                             atol=1e-14)


def test_two_points_have_zero_gradient():
  """N = 2: q₁₂ = ½ for every Y, so the cost is constant and its gradient 0."""
  with jax.enable_x64(True):
    y = jnp.array([[0.3, 1.0], [-1.2, 0.5]])
    p = jnp.array([[0.0, 0.5], [0.5, 0.0]])
    for kl in (hw.tsne.tsne_kl, hw.tsne.sne_kl):
      value, gradient = jax.value_and_grad(kl)(y, p)
      assert abs(float(value)) <= 1e-15
      assert float(jnp.max(jnp.abs(gradient))) <= 1e-15


def test_cost_module_never_calls_autodiff():
  path = Path(cost.__file__)
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Attribute) and node.attr in AUTODIFF_NAMES:
      found.append(node.lineno)
    if isinstance(node, ast.ImportFrom) and any(a.name in AUTODIFF_NAMES for a in node.names):
      found.append(node.lineno)
  assert found == []


def test_backward_rule_runs_with_autodiff_booby_trapped(monkeypatch):
  def trap(*args, **kwargs):
    raise AssertionError("autodiff called inside the t-SNE backward rule")
  with jax.enable_x64(True):
    y = jnp.asarray(np.random.default_rng(3).standard_normal((5, 2)))
    p = jnp.asarray(_joint_p(5, seed=3))
    _, residuals = cost._kl_fwd(y, p, "student_t")
    expected = jax.grad(hw.tsne.tsne_kl, argnums=(0, 1))(y, p)
    for attr in AUTODIFF_NAMES:
      for module in (jax, jax_api):
        if hasattr(module, attr):
          monkeypatch.setattr(module, attr, trap)
    for kernel in cost.KERNELS:
      cost._kl_bwd(kernel, cost._kl_fwd(y, p, kernel)[1], jnp.ones(()))
    dy, dp = cost._kl_bwd("student_t", residuals, jnp.ones(()))
  np.testing.assert_allclose(dy, expected[0], rtol=1e-13)
  np.testing.assert_allclose(dp, expected[1], rtol=1e-13)


def test_costs_are_custom_vjps():
  y, p = jnp.ones((4, 2)), jnp.full((4, 4), 1 / 12)
  for kl in (hw.tsne.tsne_kl, hw.tsne.sne_kl):
    jaxpr = str(jax.make_jaxpr(kl)(y, p))
    assert "custom_vjp_call" in jaxpr


def test_invalid_arguments_are_reported():
  with pytest.raises(ValueError, match="`y`"):
    hw.tsne.tsne_kl(jnp.ones((4,)), jnp.ones((4, 4)))
  with pytest.raises(ValueError, match="at least 2"):
    hw.tsne.tsne_kl(jnp.ones((1, 2)), jnp.ones((1, 1)))
  with pytest.raises(ValueError, match="`p`"):
    hw.tsne.sne_kl(jnp.ones((4, 2)), jnp.ones((3, 3)))
  with pytest.raises(ValueError, match="dtype"):
    hw.tsne.tsne_kl(jnp.ones((4, 2)), jnp.ones((4, 4), jnp.int32))
  with pytest.raises(ValueError, match="perplexity"):
    hw.tsne.joint_affinities(jnp.ones((10, 3)), 30.0)


def test_each_row_has_the_target_perplexity():
  rng = np.random.default_rng(4)
  x = np.concatenate([rng.standard_normal((30, 5)), 3 + 0.1 * rng.standard_normal((30, 5))])
  with jax.enable_x64(True):
    distances = affinities.input_squared_distances(jnp.asarray(x))
    result = affinities.conditional_affinities(distances, 10.0)
    conditional = np.asarray(result.p)
    entropy_error, beta0 = np.asarray(result.entropy_error), float(result.beta[0])
    joint = np.asarray(hw.tsne.joint_affinities(jnp.asarray(x), 10.0))
  entropy = -np.sum(np.where(conditional > 0, conditional * np.log(
      np.where(conditional > 0, conditional, 1.0)), 0.0), axis=1)
  np.testing.assert_allclose(np.exp(entropy), 10.0, rtol=1e-9)
  assert float(np.max(entropy_error)) <= 1e-10
  np.testing.assert_allclose(conditional.sum(axis=1), 1.0, rtol=1e-12)
  assert np.all(np.diag(conditional) == 0)
  np.testing.assert_allclose(joint, joint.T, rtol=0, atol=0)
  np.testing.assert_allclose(joint.sum(), 1.0, rtol=1e-12)
  # Row 0 by a plain NumPy bisection on sigma, as a second opinion on beta.
  d0 = np.sum((x - x[0]) ** 2, axis=1)[1:]
  low, high = 1e-6, 1e6
  for _ in range(200):
    beta = np.sqrt(low * high)
    w = np.exp(-beta * (d0 - d0.min()))
    prob = w / w.sum()
    h = -np.sum(prob * np.log(np.maximum(prob, 1e-300)))
    low, high = (beta, high) if h > np.log(10.0) else (low, beta)
  np.testing.assert_allclose(beta0, beta, rtol=1e-8)


def test_pca_matches_svd():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((40, 8)) @ rng.standard_normal((8, 8))
  with jax.enable_x64(True):
    scores = np.asarray(hw.tsne.pca(x, 3))
  centred = x - x.mean(axis=0)
  u, s, _ = np.linalg.svd(centred, full_matrices=False)
  expected = u[:, :3] * s[:3]
  np.testing.assert_allclose(np.abs(scores), np.abs(expected), rtol=1e-8, atol=1e-10)


def test_knn_accuracy_on_clusters_and_ties():
  points = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
  assert hw.tsne.knn_accuracy(points, np.array([0, 0, 0, 1, 1, 1]), k=2) == 1.0
  # k = 2 with neighbours of different labels: the nearer one wins.
  line = np.array([[0.0], [1.0], [3.0]])
  assert hw.tsne.knn_accuracy(line, np.array([1, 1, 2]), k=2) == pytest.approx(2 / 3)


def test_embedding_separates_clusters():
  rng = np.random.default_rng(6)
  centres = 8.0 * rng.standard_normal((3, 10))
  x = np.concatenate([c + rng.standard_normal((30, 10)) for c in centres])
  labels = np.repeat(np.arange(3), 30)
  config = hw.tsne.TsneConfig(perplexity=10.0, iterations=300, exaggeration_iterations=100,
                              momentum_switch=100, pca_components=None, cost_every=50,
                              learning_rate=20.0)
  result = hw.tsne.embed(x, config)
  assert result.y.shape == (90, 2) and np.all(np.isfinite(result.y))
  assert hw.tsne.knn_accuracy(result.y, labels, k=5) == 1.0
  assert result.kl_history[-1] < result.kl_history[2]  # falls once exaggeration ends
  assert result.kl == pytest.approx(result.kl_history[-1])
  again = hw.tsne.embed(x, config)
  np.testing.assert_array_equal(again.y, result.y)  # deterministic for a seed


@pytest.mark.slow
@pytest.mark.real_data
def test_mnist_2000_digits_knn_accuracy(hw_data_dir):
  import hw.data
  dataset = hw.data.load_dataset("mnist", data_dir=hw_data_dir)
  result = hw.tsne.embed(dataset.test.images[:2000], hw.tsne.TsneConfig())
  accuracy = hw.tsne.knn_accuracy(result.y, dataset.test.labels[:2000], k=5)
  print(f"t-SNE 2000 MNIST: {result.seconds:.1f} s, KL {result.kl:.3f}, 5-NN {accuracy:.4f}, "
        f"load {os.getloadavg()[0]:.1f}")
  assert accuracy >= 0.88


def test_pca_by_subspace_iteration_matches_a_full_eigendecomposition():
  """A decaying spectrum wider than the block (D = 120 > k + oversampling = 60)."""
  rng = np.random.default_rng(7)
  scales = 0.93 ** np.arange(120)
  x = rng.standard_normal((300, 120)) * scales @ np.linalg.qr(rng.standard_normal((120, 120)))[0]
  with jax.enable_x64(True):
    scores = np.asarray(hw.tsne.pca(x, 10, oversampling=50, iterations=30))
  centred = x - x.mean(axis=0)
  u, s, _ = np.linalg.svd(centred, full_matrices=False)
  expected = u[:, :10] * s[:10]
  np.testing.assert_allclose(np.abs(scores), np.abs(expected), rtol=1e-6, atol=1e-8 * s[0])
