using System.Reflection;
using System.Runtime.InteropServices;

namespace Apm.Kafka.Native;

/// <summary>
/// The few librdkafka entry points that host the mock cluster. Confluent.Kafka does not expose them, so
/// they are bound here against the same shared library Confluent.Kafka loads (the OS package librdkafka1).
/// Signatures follow librdkafka 2.0.2's rdkafka.h and rdkafka_mock.h.
/// </summary>
internal static unsafe partial class LibRdKafka
{
    /// <summary>The logical name; <see cref="Resolve"/> maps it to the platform's file name.</summary>
    private const string Library = "rdkafka";

    /// <summary>rd_kafka_type_t RD_KAFKA_PRODUCER: the hosting handle never produces, any type would do.</summary>
    internal const int ProducerType = 0;

    /// <summary>rd_kafka_conf_res_t RD_KAFKA_CONF_OK.</summary>
    internal const int ConfOk = 0;

    // librdkafka1 ships only the versioned soname (librdkafka.so without ".1" comes with the -dev package),
    // so the resolver tries the soname first; the other names cover macOS and Windows builds.
    private static readonly string[] s_candidates =
        ["librdkafka.so.1", "librdkafka.so", "librdkafka.dylib", "librdkafka.1.dylib", "librdkafka.dll", "rdkafka"];

    private static readonly bool s_resolverSet = SetResolver();

    /// <summary>
    /// Registers the resolver before the first call. Called explicitly because a blittable LibraryImport
    /// compiles to a plain extern method, and a call to one is not guaranteed to run a static constructor first.
    /// </summary>
    internal static void EnsureResolver() => _ = s_resolverSet;

    private static bool SetResolver()
    {
        NativeLibrary.SetDllImportResolver(typeof(LibRdKafka).Assembly, Resolve);
        return true;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Library)
        {
            return IntPtr.Zero;
        }

        foreach (var candidate in s_candidates)
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle))
            {
                return handle;
            }
        }

        throw new DllNotFoundException(
            "librdkafka was not found (tried " + string.Join(", ", s_candidates) +
            "). Install the OS package that provides librdkafka 2.x (Debian: librdkafka1).");
    }

    [LibraryImport(Library, EntryPoint = "rd_kafka_version_str")]
    internal static partial IntPtr VersionStr();

    [LibraryImport(Library, EntryPoint = "rd_kafka_err2str")]
    internal static partial IntPtr Err2Str(int err);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_new")]
    internal static partial IntPtr ConfNew();

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_destroy")]
    internal static partial void ConfDestroy(IntPtr conf);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int ConfSet(IntPtr conf, string name, string value, byte* errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_set_opaque")]
    internal static partial void ConfSetOpaque(IntPtr conf, IntPtr opaque);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_set_log_cb")]
    internal static partial void ConfSetLogCb(IntPtr conf, delegate* unmanaged<IntPtr, int, byte*, byte*, void> logCb);

    [LibraryImport(Library, EntryPoint = "rd_kafka_opaque")]
    internal static partial IntPtr Opaque(IntPtr rk);

    /// <summary>Takes ownership of <paramref name="conf"/> on success only.</summary>
    [LibraryImport(Library, EntryPoint = "rd_kafka_new")]
    internal static partial IntPtr New(int type, IntPtr conf, byte* errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "rd_kafka_destroy")]
    internal static partial void Destroy(IntPtr rk);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_new")]
    internal static partial IntPtr MockClusterNew(IntPtr rk, int brokerCount);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_destroy")]
    internal static partial void MockClusterDestroy(IntPtr mcluster);

    /// <summary>Returns a string owned by the cluster, valid until it is destroyed.</summary>
    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_bootstraps")]
    internal static partial IntPtr MockClusterBootstraps(IntPtr mcluster);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_topic_create", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MockTopicCreate(IntPtr mcluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_down")]
    internal static partial int MockBrokerSetDown(IntPtr mcluster, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_up")]
    internal static partial int MockBrokerSetUp(IntPtr mcluster, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_rtt")]
    internal static partial int MockBrokerSetRtt(IntPtr mcluster, int brokerId, int rttMs);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_coordinator_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MockCoordinatorSet(IntPtr mcluster, string keyType, string key, int brokerId);

    /// <summary>Reads a NUL-terminated UTF-8 string that librdkafka owns (never freed here).</summary>
    internal static string ReadString(IntPtr utf8) => Marshal.PtrToStringUTF8(utf8) ?? string.Empty;

    /// <summary>librdkafka's own text for an rd_kafka_resp_err_t, e.g. "Local: Unknown broker".</summary>
    internal static string ErrorText(int err) => ReadString(Err2Str(err));
}
