import pytest
import torch
from torch import nn

from fourds.models.folded_norm import project_normalized


@pytest.fixture
def layers() -> tuple[nn.LayerNorm, nn.Linear]:
    torch.manual_seed(0)
    norm, linear = nn.LayerNorm(24, eps=1e-6), nn.Linear(24, 10)
    for parameter in (*norm.parameters(), *linear.parameters()):
        nn.init.normal_(parameter)
    return norm, linear


def test_the_folded_projection_of_frozen_features_has_the_two_layers_values_and_gradients(layers):
    norm, linear = layers
    features = torch.randn(3, 7, 24) * 5 + 2
    parameters = [*norm.parameters(), *linear.parameters()]
    folded = project_normalized(features, norm, linear)
    plain = linear(norm(features))
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
    folded_grads = torch.autograd.grad(folded.sin().sum(), parameters)
    plain_grads = torch.autograd.grad(plain.sin().sum(), parameters)
    for got, expected in zip(folded_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_features_that_take_a_gradient_get_it_through_the_two_layers(layers):
    norm, linear = layers
    features = torch.randn(3, 7, 24, requires_grad=True)
    (grad,) = torch.autograd.grad(project_normalized(features, norm, linear).sum(), features)
    (expected,) = torch.autograd.grad(linear(norm(features)).sum(), features)
    torch.testing.assert_close(grad, expected)
