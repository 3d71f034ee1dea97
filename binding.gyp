{
  "targets": [
    {
      "target_name": "offloadd",
      "sources": [
        "native/addon.cc",
        "native/attribution.cc",
        "native/ethtool.cc",
        "native/ethtool_netlink.cc",
        "native/flock.cc",
        "native/rtnl.cc",
        "native/stats.cc",
        "native/unix_dgram.cc",
        "native/unix_listener.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except", "offloadd_memory"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror=format-security", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-O2"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"]
    },
    {
      "target_name": "offloadd_memory",
      "type": "static_library",
      "sources": ["native/memory.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags_cc": ["-std=c++20", "-fPIC", "-Wall", "-Wextra", "-Werror=format-security", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-O2"]
    }
  ]
}
