using Apm.Aggregator;
using Apm.Collector;
using Apm.Dashboard;
using Apm.Influx;
using Apm.Kafka;
using Apm.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Apm.Cli;

[Flags]
internal enum ApmRoles
{
    None = 0,
    Collector = 1,
    Aggregator = 2,
    Api = 4,
    All = Collector | Aggregator | Api,
}

/// <summary>Composes one process from the roles asked for; in single-node mode it also starts the embedded broker and a local InfluxDB.</summary>
internal static class ApmHost
{
    private const string DefaultUrl = "http://127.0.0.1:5080";

    public static async Task<int> RunAsync(ApmRoles roles, string[] args)
    {
        var demo = args.Contains("--demo");
        var builder = WebApplication.CreateBuilder(args.Where(a => a != "--demo").ToArray());
        var config = builder.Configuration;
        // Structured logs for log shippers (Apm__LogFormat=json: one JSON object per line with the template's
        // named values), single readable lines otherwise.
        if (string.Equals(config["Apm:LogFormat"], "json", StringComparison.OrdinalIgnoreCase))
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ");
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
        }
        // Request logs are noise for operators; warnings and errors still show.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        using var bootLoggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
        var bootLogger = bootLoggerFactory.CreateLogger("apm");

        // Where to listen: --urls / ASPNETCORE_URLS, else 127.0.0.1:5080 for the API, else a free loopback port (health only).
        var urls = config["urls"];
        if (string.IsNullOrEmpty(urls)) urls = roles.HasFlag(ApmRoles.Api) ? DefaultUrl : "http://127.0.0.1:0";
        builder.WebHost.UseUrls(urls);
        var auth = config.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        if (ServerExtensions.FindUnsafeAddress(urls.Split(';', StringSplitOptions.RemoveEmptyEntries), auth) is { } unsafeUrl)
        {
            await Console.Error.WriteLineAsync($"apm: refusing to listen on {unsafeUrl} without authentication. Set Apm__Auth__Users__<name> (a password hash, see docs/dashboard.md) or Apm__Auth__ApiKey, or listen on 127.0.0.1.").ConfigureAwait(false);
            return 3;
        }

        var stateDir = Path.GetFullPath(config["Apm:DataDirectory"] ?? ".apm");
        // Triage reports live under the data directory unless configured (the aggregator writes, the API reads).
        if (string.IsNullOrEmpty(config["Apm:Reports:Directory"])) config["Apm:Reports:Directory"] = Path.Combine(stateDir, "reports");
        // Heap dumps the collector takes wait for their triage there too, unless configured (docs/configuration.md).
        if (string.IsNullOrEmpty(config["Apm:Collector:HeapDump:Directory"])) config["Apm:Collector:HeapDump:Directory"] = Path.Combine(stateDir, "dumps");
        var disposables = new List<IAsyncDisposable>();
        try
        {
            // Kafka: a configured cluster, or the embedded mock cluster (single node).
            var kafka = config.GetSection("Apm:Kafka").Get<KafkaOptions>() ?? new KafkaOptions();
            if (kafka.UsesEmbeddedCluster && roles != ApmRoles.All && roles != ApmRoles.Api)
            {
                await Console.Error.WriteLineAsync("apm: set Apm__Kafka__BootstrapServers (the embedded broker only lives inside `apm up`).").ConfigureAwait(false);
                return 2;
            }

            // The embedded broker lives where the collector runs; on a real cluster the aggregator creates missing topics.
            var startKafka = kafka.UsesEmbeddedCluster
                ? roles.HasFlag(ApmRoles.Collector)
                : roles.HasFlag(ApmRoles.Aggregator) && config.GetValue("Apm:Kafka:EnsureTopics", true);
            if (startKafka)
            {
                try
                {
                    var runtime = await KafkaRuntime.StartAsync(kafka, bootLogger).ConfigureAwait(false);
                    disposables.Add(new SyncDisposable(runtime));
                    kafka = runtime.Options;
                }
                catch (Confluent.Kafka.KafkaException ex) when (!kafka.UsesEmbeddedCluster)
                {
                    // Topics may exist already, or be managed by the cluster's operators; consuming still works.
                    bootLogger.LogWarning("Could not create Apm's topics ({Reason}); continuing with the topics the cluster has", ex.Error.Reason);
                }
            }

            builder.Services.AddSingleton(Options.Create(kafka));
            // The API and the dashboard send heap-dump commands when Kafka is reachable from this process.
            if (roles.HasFlag(ApmRoles.Api) && (!kafka.UsesEmbeddedCluster || roles.HasFlag(ApmRoles.Collector)))
            {
                builder.Services.AddSingleton<ICommandSender>(_ => new KafkaCommandSender(kafka));
            }

            // InfluxDB: a configured server, or a local influxd with its data under ./.apm/influxdb.
            var influx = config.GetSection("Apm:Influx").Get<InfluxOptions>() ?? new InfluxOptions();
            if (roles.HasFlag(ApmRoles.Aggregator) || roles.HasFlag(ApmRoles.Api))
            {
                if (influx.Url is null)
                {
                    if (roles != ApmRoles.All)
                    {
                        await Console.Error.WriteLineAsync("apm: set Apm__Influx__Url (a local influxd is only started by `apm up`).").ConfigureAwait(false);
                        return 2;
                    }

                    var server = await LocalInfluxServer.StartAsync(Path.Combine(stateDir, "influxdb"), logger: bootLogger).ConfigureAwait(false);
                    disposables.Add(server);
                    influx.Url = server.Url;
                    bootLogger.LogInformation("Local InfluxDB at {Url} (data in {Dir})", server.Url, Path.Combine(stateDir, "influxdb"));
                }

                using var writerForSetup = new InfluxWriter(influx);
                await writerForSetup.EnsureDatabaseAsync().ConfigureAwait(false);
                builder.Services.AddSingleton(influx);
                builder.Services.AddSingleton(sp => new InfluxWriter(influx, logger: sp.GetRequiredService<ILogger<InfluxWriter>>()));
                builder.Services.AddApmApi(config, influx);
                if (roles.HasFlag(ApmRoles.Api)) builder.Services.AddApmDashboard(config);
            }

            builder.Services.AddSingleton<ICounterSource, ProcessCounterSource>();
            builder.Services.AddSingleton<NativeHeapTrimmer>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<NativeHeapTrimmer>());
            builder.Services.AddSingleton<ICounterSource>(sp => sp.GetRequiredService<NativeHeapTrimmer>());
            builder.Services.AddSingleton<CollectorMetrics>();
            builder.Services.AddSingleton<AggregatorMetrics>();
            if (roles.HasFlag(ApmRoles.Collector))
            {
                builder.Services.Configure<CollectorOptions>(config.GetSection(CollectorOptions.Section));
                builder.Services.AddHostedService<CollectorService>();
                builder.Services.AddSingleton<ICounterSource, CollectorCounterSource>();
            }

            if (roles.HasFlag(ApmRoles.Aggregator))
            {
                builder.Services.Configure<AggregatorOptions>(config.GetSection(AggregatorOptions.Section));
                builder.Services.AddApmAlerting(config, stateDir, AlertingSetup.FirstUrl(urls), bootLogger);
                builder.Services.AddHostedService<AggregatorService>();
                builder.Services.AddSingleton<ICounterSource, AggregatorCounterSource>();
            }

            var app = builder.Build();
            if (roles.HasFlag(ApmRoles.Api) || roles.HasFlag(ApmRoles.Aggregator))
            {
                app.UseApmApi();
                if (roles.HasFlag(ApmRoles.Api)) app.UseApmDashboard();
            }
            else
            {
                app.MapGet("/healthz", (IEnumerable<ICounterSource> sources) => Results.Json(
                    new HealthResponse("ok", new Dictionary<string, string>(), sources.SelectMany(x => x.ReadCounters()).ToDictionary(StringComparer.Ordinal)),
                    ApiJsonContext.Default.HealthResponse));
                app.MapApmMetrics();
            }

            if (demo) disposables.Add(await DemoJvm.StartAsync(stateDir, bootLogger).ConfigureAwait(false));
            if (roles.HasFlag(ApmRoles.Api))
            {
                app.Lifetime.ApplicationStarted.Register(() =>
                    bootLogger.LogInformation("Apm is up: dashboard {Urls}/  JSON API {Urls}/api/jvms  (Ctrl-C stops everything)", string.Join(", ", app.Urls), string.Join(", ", app.Urls)));
            }

            await app.RunAsync().ConfigureAwait(false);
            return 0;
        }
        finally
        {
            for (var i = disposables.Count - 1; i >= 0; i--) await disposables[i].DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class SyncDisposable(IDisposable inner) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            inner.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
