using System.Net.Http.Json;
using Apm.Aggregator;
using Apm.Collector;
using Apm.Influx;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Server;
using Apm.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// A whole Apm pipeline made of real parts for one test: the Kafka protocol broker (librdkafka's mock
/// cluster) on a free loopback port, a real influxd, aggregator instances, and the HTTP API.
/// </summary>
public sealed class Pipeline : IAsyncDisposable
{
    private readonly List<AggregatorRunner> _aggregators = [];
    private WebApplication? _api;

    private Pipeline(EmbeddedKafkaCluster kafka, InfluxServer influx)
    {
        Kafka = kafka;
        Influx = influx;
        KafkaOptions = new KafkaOptions { Partitions = 6 }.WithBootstrapServers(kafka.BootstrapServers);
        // Rebalances in tests settle within seconds, not the production minutes: a member that does not rejoin (the
        // mock coordinator can hold a join under heavy load) is given up after 30 s instead of 10 minutes.
        KafkaOptions.Extra["session.timeout.ms"] = "10000";
        KafkaOptions.Extra["heartbeat.interval.ms"] = "1000";
        KafkaOptions.Extra["max.poll.interval.ms"] = "30000";
        InfluxOptions = new InfluxOptions { Url = influx.Url, Database = "apm", MaxRetries = 2, RetryBaseDelay = TimeSpan.FromMilliseconds(100) };
        Query = new InfluxQueryClient(InfluxOptions);
    }

    public EmbeddedKafkaCluster Kafka { get; }

    public InfluxServer Influx { get; }

    public KafkaOptions KafkaOptions { get; }

    public InfluxOptions InfluxOptions { get; }

    public InfluxQueryClient Query { get; }

    public HttpClient? Api { get; private set; }

    public static async Task<Pipeline> StartAsync(int brokers = 1)
    {
        var kafka = EmbeddedKafkaCluster.Start(brokers);
        TopicAdmin.EnsureTopics(kafka, ApmTopics.All, partitions: 6);
        var influx = await InfluxServer.StartAsync();
        var p = new Pipeline(kafka, influx);
        using var w = new InfluxWriter(p.InfluxOptions);
        await w.EnsureDatabaseAsync();
        return p;
    }

    /// <summary>Starts an in-process aggregator (a consumer-group member) on its own thread.</summary>
    public AggregatorRunner StartAggregator(AggregatorOptions? options = null)
    {
        var runner = new AggregatorRunner(KafkaOptions, InfluxOptions, options ?? new AggregatorOptions { BatchMaxDelay = TimeSpan.FromMilliseconds(300) });
        _aggregators.Add(runner);
        return runner;
    }

    /// <summary>Serves the JSON API on a free loopback port; <see cref="Api"/> talks to it.</summary>
    public async Task<HttpClient> StartApiAsync(TimeSpan? staleAfter = null, string? apiKey = null, ICommandSender? commands = null,
        IDictionary<string, string?>? settings = null)
    {
        var port = FreePort.Next();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Apm:Api:StaleAfter"] = (staleAfter ?? TimeSpan.FromSeconds(60)).ToString(),
            ["Apm:Auth:ApiKey"] = apiKey,
        });
        if (settings is not null) builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.Services.AddApmApi(builder.Configuration, InfluxOptions);
        if (commands is not null) Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton(builder.Services, commands);
        _api = builder.Build();
        _api.UseApmApi();
        await _api.StartAsync();
        Api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        return Api;
    }

    public CollectorPublisher CreatePublisher(CollectorMetrics metrics, int bufferMessages = 100_000) =>
        new(KafkaOptions, new CollectorOptions { BufferMessages = bufferMessages, HostName = "test-host" }, metrics, NullLogger.Instance);

    /// <summary>Number of stored points of <paramref name="measurement"/> whose jvm_id starts with <paramref name="jvmIdPrefix"/>.</summary>
    public async Task<long> CountAsync(string measurement, string jvmIdPrefix)
    {
        var regex = "/^" + System.Text.RegularExpressions.Regex.Escape(jvmIdPrefix).Replace("/", "\\/", StringComparison.Ordinal) + "/";
        var results = await Query.QueryAsync($"SELECT count(\"value\") FROM {InfluxQl.QuoteIdentifier(measurement)} WHERE \"jvm_id\" =~ {regex}");
        var series = results.Results.Count > 0 ? results.Results[0].Series : [];
        return series.Count == 0 ? 0 : series[0].Values[0][1].GetInt64();
    }

    /// <summary>
    /// Publishes <paramref name="total"/> synthetic samples in the background, round robin over <paramref name="jvms"/>
    /// JVMs named <paramref name="prefix"/>:N (sequence numbers from 1, timestamps 1 ms apart from <paramref name="t0"/>),
    /// pausing <paramref name="pause"/> every <paramref name="burst"/> samples so aggregators can act mid-stream; then flushes.
    /// </summary>
    public static Task PublishSteadilyAsync(CollectorPublisher publisher, string prefix, int jvms, int total, long t0, int burst, TimeSpan pause, TimeSpan flush) =>
        Task.Run(async () =>
        {
            for (var i = 0; i < total; i++)
            {
                publisher.Publish(SyntheticSample($"{prefix}:{i % jvms}", (ulong)(i / jvms) + 1, t0 + (i * 1_000_000L)));
                if (i % burst == 0) await Task.Delay(pause);
            }

            publisher.Flush(flush);
        });

    /// <summary>
    /// Waits (up to 2 minutes) until <paramref name="total"/> synthetic samples of <paramref name="prefix"/> are stored,
    /// then, 2 s later, checks that there are exactly that many: one jvm.uptime and two jvm.memory.used points each
    /// (no duplicates). <paramref name="context"/> says what to print when they do not arrive.
    /// </summary>
    public async Task AssertStoredExactlyOnceAsync(string prefix, int total, Func<string> context)
    {
        Assert.True(await EventuallyAsync(async () => await CountAsync("jvm.uptime", prefix) == total, TimeSpan.FromSeconds(120)),
            $"stored {await CountAsync("jvm.uptime", prefix)} of {total}; {context()}");
        await Task.Delay(2000);
        Assert.Equal(total, await CountAsync("jvm.uptime", prefix));
        Assert.Equal(2 * total, await CountAsync("jvm.memory.used", prefix));
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the timeout passes; returns whether it held.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return true;
            await Task.Delay(200);
        }

        return await condition();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _aggregators) a.Dispose();
        Api?.Dispose();
        if (_api != null) await _api.DisposeAsync();
        Query.Dispose();
        Influx.Dispose();
        Kafka.Dispose();
    }

    /// <summary>Synthetic JVM samples with distinct timestamps, for exact counting through the real producer path.</summary>
    public static CollectorMessage SyntheticSample(string jvmId, ulong sequence, long timeUnixNanos) => new()
    {
        Sample = new JvmSample
        {
            Jvm = new JvmIdentity { JvmId = jvmId, Host = "test-host", Pid = 4242, MainClass = "com.example.Synthetic", JvmVersion = "17.0.15" },
            Sequence = sequence,
            TimeUnixNanos = timeUnixNanos,
            UptimeSeconds = sequence,
            Spaces =
            {
                new MemorySpace { Pool = "eden", Type = "heap", UsedBytes = 1000 + (long)sequence, CommittedBytes = 4096, MaxBytes = 8192 },
                new MemorySpace { Pool = "old", Type = "heap", UsedBytes = 2000, CommittedBytes = 4096, MaxBytes = 8192 },
            },
            Collectors = { new Protocol.V1.Collector { Index = 0, Name = "G1 young", Invocations = (long)sequence, TimeSeconds = sequence * 0.001 } },
            LiveThreads = 10,
        },
    };
}

/// <summary>An aggregator instance running <see cref="SampleConsumer"/> on a dedicated thread.</summary>
public sealed class AggregatorRunner : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly InfluxWriter _writer;
    private bool _disposed;

    public AggregatorRunner(KafkaOptions kafka, InfluxOptions influx, AggregatorOptions options)
    {
        _writer = new InfluxWriter(influx);
        var consumer = new SampleConsumer(kafka, options, Metrics, NullLogger.Instance, _writer.WriteAsync);
        _thread = new Thread(() =>
        {
            try
            {
                consumer.Run(_stop.Token);
            }
            catch (Exception ex)
            {
                Failure = ex;
            }
            finally
            {
                consumer.Dispose();
            }
        })
        { IsBackground = true };
        _thread.Start();
    }

    public AggregatorMetrics Metrics { get; } = new();

    public Exception? Failure { get; private set; }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop.Cancel();
        _thread.Join(TimeSpan.FromSeconds(30));
        _writer.Dispose();
        _stop.Dispose();
    }
}
