// no-entry: a shared library that is not a sluice plugin: it exports a function, but neither
// sluice_plugin_abi nor sluice_plugin_register.
extern "C" __attribute__((visibility("default"))) int not_a_sluice_plugin(int x) {
  return x + 1;
}
