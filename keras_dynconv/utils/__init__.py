"""Model-level helpers."""

from keras_dynconv.utils.formulation import set_formulation
from keras_dynconv.utils.profile import LayerProfile
from keras_dynconv.utils.profile import Profile
from keras_dynconv.utils.profile import profile
from keras_dynconv.utils.static_twin import static_twin
from keras_dynconv.utils.temperature import dynamic_layers
from keras_dynconv.utils.temperature import set_temperature

__all__ = [
    "LayerProfile", "Profile", "dynamic_layers", "profile", "set_formulation",
    "set_temperature", "static_twin",
]
