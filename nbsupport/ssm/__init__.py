"""State space model initialization (the SSM theme): HiPPO operators, S4D inits, PTD, the S4D
layer and kernel. This module only re-exports; the math lives in named modules:

- :mod:`nbsupport.ssm.hippo`: HiPPO matrices, NPLR form, bases, online projection, the
  time-invariant LegS kernel in closed form;
- :mod:`nbsupport.ssm.init`: S4D diagonal inits;
- :mod:`nbsupport.ssm.ptd`: perturb-then-diagonalize and transfer functions;
- :mod:`nbsupport.models.s4d`: the layer with its discretization and kernel (``ssm_kernel``,
  ``s4d_kernel`` through the kernel resolver);
- :mod:`nbsupport.ssm.layers`: layers and models built from a named init;
- :mod:`nbsupport.ssm.experiments`: training and evaluation helpers of the notebooks.

Diagonal SSMs keep one eigenvalue of each conjugate pair: every kernel is
``K[l] = 2 Re sum_n C_n Bbar_n Abar_n^l``.
"""

from nbsupport.models.s4d import S4D, S4DModel, discretize, init_log_dt, s4d_kernel, ssm_kernel
from nbsupport.ssm.hippo import (
    MEASURES,
    basis,
    hippo,
    hippo_nplr,
    legs_lti_kernel,
    online_approximation,
    reconstruct,
)
from nbsupport.ssm.init import KINDS, S4D_INITS, s4d_init
from nbsupport.ssm.layers import s4d_layer, s4d_model
from nbsupport.ssm.ptd import eig_condition, ptd_init, ptd_s4d_init, transfer_function

__all__ = [
    "KINDS", "MEASURES", "S4D", "S4DModel", "S4D_INITS", "basis", "discretize", "eig_condition", "hippo",
    "hippo_nplr", "init_log_dt", "legs_lti_kernel", "online_approximation", "ptd_init", "ptd_s4d_init", "reconstruct",
    "s4d_init", "s4d_kernel", "s4d_layer", "s4d_model", "ssm_kernel", "transfer_function",
]
