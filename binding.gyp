{
  "variables": {
    "sanitize%": "0"
  },
  "targets": [
    {
      "target_name": "explicit_sync",
      "sources": [
        "native/addon.cc",
        "native/util.cc",
        "native/device.cc",
        "native/fd_watcher.cc",
        "native/fd_poller.cc",
        "native/sync_file.cc",
        "native/dma_buf.cc",
        "native/vgem.cc",
        "native/sw_sync.cc",
        "native/dma_heap.cc",
        "native/syncobj.cc",
        "native/syncobj_wait.cc",
        "native/kms.cc",
        "native/kms_commit.cc",
        "native/unix_socket.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=c++17"],
      "cflags": [
        "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-fstack-protector-strong"
      ],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "conditions": [
        ["sanitize==1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
