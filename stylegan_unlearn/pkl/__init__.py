"""Network pickles: load (safe or compatible), save, and small conveniences.

Security model
--------------
A StyleGAN network pickle is code: each network stores the full Python source of its module and
the official loader `exec`s it. Loading a pickle from an untrusted source that way can run
anything (delete files, open connections).

* `safe=True` (the default) reads the file with `SafeUnpickler`, which never executes the stored
  source. It allows only the globals a network pickle needs (tensor and storage rebuilders,
  numpy arrays/scalars, `OrderedDict`, `EasyDict`, torch dtypes/devices, plain `torch.nn`
  layers) and refuses any other global with "refusing to load global X in safe mode"; storages
  are decoded with `torch.load(weights_only=True)`, and the BUILD opcode may not modify classes,
  functions or modules. Persistent objects become inert `PersistentRecord`s. Records of known
  StyleGAN2 families (StyleGAN2-ADA, StyleGAN3's `stylegan2` config, our own) are rebuilt as
  `stylegan_unlearn.networks.stylegan2` modules from their stored constructor kwargs and every
  tensor is copied by name (all names and shapes must match). Everything else (augment pipes,
  StyleGAN3-T/R networks, unknown classes) stays a record and is written back unchanged (same
  class name, source and state) by `save_network_pkl`, so no user data is lost. What safe mode still trusts: torch and
  numpy's own array reconstruction code, and the constructors of our networks.
* `safe=False` ("compatible mode") is plain unpickling through our `torch_utils`/`dnnlib`: the
  stored source runs, exactly as in the official tools. Use it only for files you trust, e.g. to
  run networks we cannot rebuild (StyleGAN3-T/R) or code modified by the file's author.
"""
from stylegan_unlearn.pkl.errors import NetworkPklError, NetworkPklNotFoundError
from stylegan_unlearn.pkl.load import (NETWORK_KEYS, check_network_file, check_network_files, describe_network,
                                      load_generator, load_network_pkl, load_networks)
from stylegan_unlearn.pkl.safe_unpickler import PersistentRecord
from stylegan_unlearn.pkl.save import network_pkl_bytes, save_network_pkl

__all__ = ["load_network_pkl", "load_networks", "NETWORK_KEYS", "save_network_pkl", "network_pkl_bytes", "load_generator", "describe_network",
           "check_network_file", "check_network_files", "NetworkPklError", "NetworkPklNotFoundError", "PersistentRecord"]
