/*
 * vk-interop: a Vulkan peer for the interop tests (test/vm/interop.test.mts). It plays a real
 * third-party producer and consumer of sync_files and dma-bufs, with Mesa's lavapipe.
 *
 * At start it prints "READY <device>|<driver info>|<wanted extensions it lacks>". Then it reads one
 * command a line on stdin and answers one line on stdout ("ERR <why>" on failure):
 *
 *   produce-semaphore      -> "FD <n>"  a SYNC_FD exported from a binary semaphore a submit signals
 *   produce-fence          -> "FD <n>"  a SYNC_FD exported from a fence a submit signals
 *   produce-timeline       -> "FD <n>"  a timeline semaphore exported as OPAQUE_FD, or
 *                             "ERR UNSUPPORTED ..." when the driver cannot (lavapipe 25 cannot)
 *   produce-opaque         -> "FD <n>"  a binary semaphore exported as OPAQUE_FD (or ERR UNSUPPORTED)
 *   produce-dmabuf <size>  -> "FD <n>"  DMA_BUF memory of <size> bytes (kept as the "current" buffer)
 *   fill <u32>             -> "OK"      vkCmdFillBuffer of the current buffer with <u32>, waited for
 *   read <len>             -> "DATA <hex>"  the current buffer's first <len> bytes, copied by the GPU
 *                                       into a host buffer (what Vulkan sees, not a CPU mapping)
 *   import-dmabuf <fd> <size> -> "OK"   imports a dup of a dma-buf (an fd this process inherited) as
 *                                       memory and makes it the current buffer
 *   consume <fd>           -> "PENDING <ns>" or "DONE <ns>" at once, then (if pending) "DONE <ns>"
 *                                       when the submit finished, or "TIMEOUT" after 60 s. It imports
 *                                       a dup of the sync_file <fd> (inherited; Vulkan takes the
 *                                       dup) as a temporary SYNC_FD wait semaphore of a submit.
 *   close <fd>             -> "OK"
 *   quit
 *
 * The fds it reports stay open in this process until `close` or exit; the test takes copies with
 * pidfd_getfd(2). Times are CLOCK_MONOTONIC nanoseconds (process.hrtime.bigint() in Node).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vulkan/vulkan.h>

static VkInstance instance;
static VkPhysicalDevice physical;
static VkDevice device;
static VkQueue queue;
static VkCommandPool pool;
static char device_name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
static char driver_info[VK_MAX_DRIVER_INFO_SIZE];

/* The current buffer: produced or imported dma-buf memory, bound to a transfer buffer. */
static VkDeviceMemory cur_memory;
static VkBuffer cur_buffer;
static VkDeviceSize cur_size;

static PFN_vkGetSemaphoreFdKHR get_semaphore_fd;
static PFN_vkImportSemaphoreFdKHR import_semaphore_fd;
static PFN_vkGetFenceFdKHR get_fence_fd;
static PFN_vkGetMemoryFdKHR get_memory_fd;
static PFN_vkGetMemoryFdPropertiesKHR get_memory_fd_properties;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

#define CHECK(call)                                                    \
  do {                                                                 \
    VkResult r_ = (call);                                              \
    if (r_ != VK_SUCCESS) {                                            \
      reply("ERR %s returned %d", #call, (int)r_);                     \
      return -1;                                                       \
    }                                                                  \
  } while (0)

static const char *const device_extensions[] = {
    VK_KHR_EXTERNAL_SEMAPHORE_FD_EXTENSION_NAME,
    VK_KHR_EXTERNAL_FENCE_FD_EXTENSION_NAME,
    VK_KHR_EXTERNAL_MEMORY_FD_EXTENSION_NAME,
    VK_EXT_EXTERNAL_MEMORY_DMA_BUF_EXTENSION_NAME,
};

static const char *enabled[sizeof device_extensions / sizeof device_extensions[0]];
static uint32_t enabled_count;
static char missing[512];

static int dma_buf_enabled;

/* Whether a command that needs VK_EXT_external_memory_dma_buf (when `needs` is 1) can run. */
static int has_dma_buf_if(int needs) { return !needs || dma_buf_enabled; }

static int missing_extension(void) {
  reply("ERR the driver lacks%s%s", missing[0] ? "" : " an extension", missing);
  return -1;
}

static int init(void) {
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                           .pApplicationName = "explicit-sync vk-interop",
                           .apiVersion = VK_API_VERSION_1_2};
  VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
  CHECK(vkCreateInstance(&ici, NULL, &instance));
  uint32_t n = 1;
  VkResult r = vkEnumeratePhysicalDevices(instance, &n, &physical);
  if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0) {
    reply("ERR no Vulkan device (vkEnumeratePhysicalDevices returned %d, %u devices)", (int)r, n);
    return -1;
  }
  VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &driver};
  vkGetPhysicalDeviceProperties2(physical, &props);
  snprintf(device_name, sizeof device_name, "%s", props.properties.deviceName);
  snprintf(driver_info, sizeof driver_info, "%s", driver.driverInfo);

  /* Enable the wanted extensions the driver has; READY names the ones it lacks. */
  uint32_t count = 0;
  vkEnumerateDeviceExtensionProperties(physical, NULL, &count, NULL);
  VkExtensionProperties *exts = calloc(count, sizeof *exts);
  vkEnumerateDeviceExtensionProperties(physical, NULL, &count, exts);
  for (size_t i = 0; i < sizeof device_extensions / sizeof device_extensions[0]; i++) {
    int found = 0;
    for (uint32_t j = 0; j < count; j++) found |= strcmp(exts[j].extensionName, device_extensions[i]) == 0;
    if (found && strcmp(device_extensions[i], VK_EXT_EXTERNAL_MEMORY_DMA_BUF_EXTENSION_NAME) == 0) dma_buf_enabled = 1;
    if (found) enabled[enabled_count++] = device_extensions[i];
    else snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", device_extensions[i]);
  }
  free(exts);

  float priority = 1.0f;
  VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = 0,
                                 .queueCount = 1,
                                 .pQueuePriorities = &priority};
  VkPhysicalDeviceVulkan12Features v12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                          .timelineSemaphore = VK_TRUE};
  VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            .pNext = &v12,
                            .queueCreateInfoCount = 1,
                            .pQueueCreateInfos = &qci,
                            .enabledExtensionCount = enabled_count,
                            .ppEnabledExtensionNames = enabled};
  CHECK(vkCreateDevice(physical, &dci, NULL, &device));
  vkGetDeviceQueue(device, 0, 0, &queue);
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                 .queueFamilyIndex = 0};
  CHECK(vkCreateCommandPool(device, &pci, NULL, &pool));
  get_semaphore_fd = (PFN_vkGetSemaphoreFdKHR)vkGetDeviceProcAddr(device, "vkGetSemaphoreFdKHR");
  import_semaphore_fd = (PFN_vkImportSemaphoreFdKHR)vkGetDeviceProcAddr(device, "vkImportSemaphoreFdKHR");
  get_fence_fd = (PFN_vkGetFenceFdKHR)vkGetDeviceProcAddr(device, "vkGetFenceFdKHR");
  get_memory_fd = (PFN_vkGetMemoryFdKHR)vkGetDeviceProcAddr(device, "vkGetMemoryFdKHR");
  get_memory_fd_properties = (PFN_vkGetMemoryFdPropertiesKHR)vkGetDeviceProcAddr(device, "vkGetMemoryFdPropertiesKHR");
  return 0;
}

/* Submits nothing but the given signal semaphore and fence. */
static int submit_empty(VkSemaphore signal, VkFence fence) {
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                     .signalSemaphoreCount = signal != VK_NULL_HANDLE,
                     .pSignalSemaphores = &signal};
  CHECK(vkQueueSubmit(queue, 1, &si, fence));
  return 0;
}

static int produce_semaphore(void) {
  if (get_semaphore_fd == NULL || !has_dma_buf_if(0)) return missing_extension();
  VkExportSemaphoreCreateInfo esci = {.sType = VK_STRUCTURE_TYPE_EXPORT_SEMAPHORE_CREATE_INFO,
                                      .handleTypes = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_SYNC_FD_BIT};
  VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &esci};
  VkSemaphore sem;
  CHECK(vkCreateSemaphore(device, &sci, NULL, &sem));
  if (submit_empty(sem, VK_NULL_HANDLE) != 0) return -1;
  VkSemaphoreGetFdInfoKHR gfi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_GET_FD_INFO_KHR,
                                 .semaphore = sem,
                                 .handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_SYNC_FD_BIT};
  int fd = -1;
  CHECK(get_semaphore_fd(device, &gfi, &fd));
  vkDestroySemaphore(device, sem, NULL);
  reply("FD %d", fd);
  return 0;
}

static int produce_fence(void) {
  if (get_fence_fd == NULL || !has_dma_buf_if(0)) return missing_extension();
  VkExportFenceCreateInfo efci = {.sType = VK_STRUCTURE_TYPE_EXPORT_FENCE_CREATE_INFO,
                                  .handleTypes = VK_EXTERNAL_FENCE_HANDLE_TYPE_SYNC_FD_BIT};
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO, .pNext = &efci};
  VkFence fence;
  CHECK(vkCreateFence(device, &fci, NULL, &fence));
  if (submit_empty(VK_NULL_HANDLE, fence) != 0) return -1;
  VkFenceGetFdInfoKHR gfi = {.sType = VK_STRUCTURE_TYPE_FENCE_GET_FD_INFO_KHR,
                             .fence = fence,
                             .handleType = VK_EXTERNAL_FENCE_HANDLE_TYPE_SYNC_FD_BIT};
  int fd = -1;
  CHECK(get_fence_fd(device, &gfi, &fd));
  vkDestroyFence(device, fence, NULL);
  reply("FD %d", fd);
  return 0;
}

/* A semaphore exported as OPAQUE_FD: a timeline one when `timeline`, else a binary one. */
static int produce_opaque(int timeline) {
  if (get_semaphore_fd == NULL || !has_dma_buf_if(0)) return missing_extension();
  VkSemaphoreTypeCreateInfo stci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                    .semaphoreType = timeline ? VK_SEMAPHORE_TYPE_TIMELINE : VK_SEMAPHORE_TYPE_BINARY,
                                    .initialValue = timeline ? 1 : 0};
  VkPhysicalDeviceExternalSemaphoreInfo qi = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_SEMAPHORE_INFO,
                                             .pNext = &stci,
                                             .handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT};
  VkExternalSemaphoreProperties qp = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_SEMAPHORE_PROPERTIES};
  vkGetPhysicalDeviceExternalSemaphoreProperties(physical, &qi, &qp);
  if (!(qp.externalSemaphoreFeatures & VK_EXTERNAL_SEMAPHORE_FEATURE_EXPORTABLE_BIT)) {
    reply("ERR UNSUPPORTED the driver cannot export a %s semaphore as OPAQUE_FD", timeline ? "timeline" : "binary");
    return -1;
  }
  VkExportSemaphoreCreateInfo esci = {.sType = VK_STRUCTURE_TYPE_EXPORT_SEMAPHORE_CREATE_INFO,
                                      .handleTypes = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT};
  stci.pNext = &esci;
  VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &stci};
  VkSemaphore sem;
  CHECK(vkCreateSemaphore(device, &sci, NULL, &sem));
  VkSemaphoreGetFdInfoKHR gfi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_GET_FD_INFO_KHR,
                                 .semaphore = sem,
                                 .handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT};
  int fd = -1;
  CHECK(get_semaphore_fd(device, &gfi, &fd));
  reply("FD %d", fd);
  return 0;
}

static void drop_current(void) {
  if (cur_buffer != VK_NULL_HANDLE) vkDestroyBuffer(device, cur_buffer, NULL);
  if (cur_memory != VK_NULL_HANDLE) vkFreeMemory(device, cur_memory, NULL);
  cur_buffer = VK_NULL_HANDLE;
  cur_memory = VK_NULL_HANDLE;
  cur_size = 0;
}

static int make_buffer(VkDeviceSize size, VkBuffer *out) {
  VkExternalMemoryBufferCreateInfo embci = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
                                            .handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT};
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            .pNext = &embci,
                            .size = size,
                            .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  CHECK(vkCreateBuffer(device, &bci, NULL, out));
  return 0;
}

/* The first memory type in `bits` with all of `flags`; -1 if none. */
static int memory_type(uint32_t bits, VkMemoryPropertyFlags flags) {
  VkPhysicalDeviceMemoryProperties mp;
  vkGetPhysicalDeviceMemoryProperties(physical, &mp);
  for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
    if ((bits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & flags) == flags) return (int)i;
  }
  return -1;
}

static int produce_dmabuf(VkDeviceSize size) {
  if (get_memory_fd == NULL || !has_dma_buf_if(1)) return missing_extension();
  drop_current();
  if (make_buffer(size, &cur_buffer) != 0) return -1;
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device, cur_buffer, &req);
  VkExportMemoryAllocateInfo emai = {.sType = VK_STRUCTURE_TYPE_EXPORT_MEMORY_ALLOCATE_INFO,
                                     .handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT};
  int type = memory_type(req.memoryTypeBits, 0);
  VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                              .pNext = &emai,
                              .allocationSize = req.size,
                              .memoryTypeIndex = (uint32_t)type};
  CHECK(vkAllocateMemory(device, &mai, NULL, &cur_memory));
  CHECK(vkBindBufferMemory(device, cur_buffer, cur_memory, 0));
  cur_size = size;
  VkMemoryGetFdInfoKHR gfi = {.sType = VK_STRUCTURE_TYPE_MEMORY_GET_FD_INFO_KHR,
                              .memory = cur_memory,
                              .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT};
  int fd = -1;
  CHECK(get_memory_fd(device, &gfi, &fd));
  reply("FD %d", fd);
  return 0;
}

static int import_dmabuf(int fd, VkDeviceSize size) {
  if (get_memory_fd_properties == NULL || !has_dma_buf_if(1)) return missing_extension();
  drop_current();
  VkMemoryFdPropertiesKHR fdp = {.sType = VK_STRUCTURE_TYPE_MEMORY_FD_PROPERTIES_KHR};
  CHECK(get_memory_fd_properties(device, VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT, fd, &fdp));
  if (make_buffer(size, &cur_buffer) != 0) return -1;
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device, cur_buffer, &req);
  int type = memory_type(req.memoryTypeBits & fdp.memoryTypeBits, 0);
  if (type < 0) {
    reply("ERR no memory type for the dma-buf (buffer 0x%x, fd 0x%x)", req.memoryTypeBits, fdp.memoryTypeBits);
    return -1;
  }
  /* A successful import takes the fd; keep our own number free of surprises by importing a dup. */
  int dup_fd = dup(fd);
  VkImportMemoryFdInfoKHR imfi = {.sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_FD_INFO_KHR,
                                  .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT,
                                  .fd = dup_fd};
  VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                              .pNext = &imfi,
                              .allocationSize = size,
                              .memoryTypeIndex = (uint32_t)type};
  VkResult r = vkAllocateMemory(device, &mai, NULL, &cur_memory);
  if (r != VK_SUCCESS) {
    close(dup_fd);
    reply("ERR vkAllocateMemory (dma-buf import) returned %d", (int)r);
    return -1;
  }
  CHECK(vkBindBufferMemory(device, cur_buffer, cur_memory, 0));
  cur_size = size;
  reply("OK");
  return 0;
}

/* Records `record` into a one-time command buffer, submits it and waits for it. */
static int run_commands(void (*record)(VkCommandBuffer, void *), void *arg) {
  VkCommandBufferAllocateInfo cbai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
  VkCommandBuffer cb;
  CHECK(vkAllocateCommandBuffers(device, &cbai, &cb));
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  CHECK(vkBeginCommandBuffer(cb, &bi));
  record(cb, arg);
  CHECK(vkEndCommandBuffer(cb));
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
  CHECK(vkQueueSubmit(queue, 1, &si, VK_NULL_HANDLE));
  CHECK(vkQueueWaitIdle(queue));
  vkFreeCommandBuffers(device, pool, 1, &cb);
  return 0;
}

static void record_fill(VkCommandBuffer cb, void *arg) {
  vkCmdFillBuffer(cb, cur_buffer, 0, VK_WHOLE_SIZE, *(uint32_t *)arg);
}

struct copy_args {
  VkBuffer dst;
  VkDeviceSize len;
};

static void record_copy(VkCommandBuffer cb, void *arg) {
  struct copy_args *c = arg;
  VkBufferCopy region = {.srcOffset = 0, .dstOffset = 0, .size = c->len};
  vkCmdCopyBuffer(cb, cur_buffer, c->dst, 1, &region);
}

static int fill(uint32_t value) {
  if (cur_buffer == VK_NULL_HANDLE) {
    reply("ERR no current buffer");
    return -1;
  }
  if (run_commands(record_fill, &value) != 0) return -1;
  reply("OK");
  return 0;
}

/* Copies the current buffer's first `len` bytes into a host-visible buffer with the GPU and prints them. */
static int read_back(VkDeviceSize len) {
  if (cur_buffer == VK_NULL_HANDLE || len == 0 || len > cur_size || len > 4096) {
    reply("ERR read needs a current buffer and 0 < len <= min(size, 4096)");
    return -1;
  }
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            .size = len,
                            .usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  VkBuffer host;
  CHECK(vkCreateBuffer(device, &bci, NULL, &host));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device, host, &req);
  VkMemoryAllocateInfo mai = {
      .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
      .allocationSize = req.size,
      .memoryTypeIndex = (uint32_t)memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)};
  VkDeviceMemory mem;
  CHECK(vkAllocateMemory(device, &mai, NULL, &mem));
  CHECK(vkBindBufferMemory(device, host, mem, 0));
  struct copy_args c = {.dst = host, .len = len};
  if (run_commands(record_copy, &c) != 0) return -1;
  unsigned char *p;
  CHECK(vkMapMemory(device, mem, 0, len, 0, (void **)&p));
  char *hex = malloc(len * 2 + 1);
  for (VkDeviceSize i = 0; i < len; i++) sprintf(hex + 2 * i, "%02x", p[i]);
  hex[len * 2] = '\0';
  reply("DATA %s", hex);
  free(hex);
  vkUnmapMemory(device, mem);
  vkDestroyBuffer(device, host, NULL);
  vkFreeMemory(device, mem, NULL);
  return 0;
}

static int consume(int fd) {
  if (import_semaphore_fd == NULL || !has_dma_buf_if(0)) return missing_extension();
  VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  VkSemaphore sem;
  CHECK(vkCreateSemaphore(device, &sci, NULL, &sem));
  /* A successful import takes the fd: import a dup so that `fd` stays this process's to close. */
  VkImportSemaphoreFdInfoKHR isfi = {.sType = VK_STRUCTURE_TYPE_IMPORT_SEMAPHORE_FD_INFO_KHR,
                                     .semaphore = sem,
                                     .flags = VK_SEMAPHORE_IMPORT_TEMPORARY_BIT,
                                     .handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_SYNC_FD_BIT,
                                     .fd = dup(fd)};
  CHECK(import_semaphore_fd(device, &isfi));
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkFence fence;
  CHECK(vkCreateFence(device, &fci, NULL, &fence));
  VkPipelineStageFlags stage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                     .waitSemaphoreCount = 1,
                     .pWaitSemaphores = &sem,
                     .pWaitDstStageMask = &stage};
  CHECK(vkQueueSubmit(queue, 1, &si, fence));
  VkResult status = vkGetFenceStatus(device, fence);
  if (status == VK_SUCCESS) {
    reply("DONE %" PRIu64, now_ns());
  } else {
    reply("PENDING %" PRIu64, now_ns());
    VkResult r = vkWaitForFences(device, 1, &fence, VK_TRUE, 60ull * 1000000000u);
    if (r == VK_SUCCESS) reply("DONE %" PRIu64, now_ns());
    else if (r == VK_TIMEOUT) reply("TIMEOUT");
    else reply("ERR vkWaitForFences returned %d", (int)r);
  }
  vkDestroyFence(device, fence, NULL);
  vkDestroySemaphore(device, sem, NULL);
  return 0;
}

int main(void) {
  if (init() != 0) return 1;
  reply("READY %s|%s|%s", device_name, driver_info, missing[0] ? missing + 1 : "");
  char line[256];
  while (fgets(line, sizeof line, stdin) != NULL) {
    char cmd[64] = "";
    unsigned long long a = 0, b = 0;
    int n = sscanf(line, "%63s %llu %llu", cmd, &a, &b);
    if (n < 1) continue;
    if (strcmp(cmd, "produce-semaphore") == 0) produce_semaphore();
    else if (strcmp(cmd, "produce-fence") == 0) produce_fence();
    else if (strcmp(cmd, "produce-timeline") == 0) produce_opaque(1);
    else if (strcmp(cmd, "produce-opaque") == 0) produce_opaque(0);
    else if (strcmp(cmd, "produce-dmabuf") == 0 && n == 2) produce_dmabuf(a);
    else if (strcmp(cmd, "import-dmabuf") == 0 && n == 3) import_dmabuf((int)a, b);
    else if (strcmp(cmd, "fill") == 0 && n == 2) fill((uint32_t)a);
    else if (strcmp(cmd, "read") == 0 && n == 2) read_back(a);
    else if (strcmp(cmd, "consume") == 0 && n == 2) consume((int)a);
    else if (strcmp(cmd, "close") == 0 && n == 2) reply(close((int)a) == 0 ? "OK" : "ERR close failed");
    else if (strcmp(cmd, "quit") == 0) break;
    else reply("ERR unknown command: %s", cmd);
  }
  drop_current();
  vkDestroyCommandPool(device, pool, NULL);
  vkDestroyDevice(device, NULL);
  vkDestroyInstance(instance, NULL);
  return 0;
}
