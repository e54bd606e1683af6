using System.Diagnostics;
using System.Net;
using Apm.Collector;
using Apm.FleetSimulator;
using Apm.Influx;
using Apm.Kafka;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Deployment.Tests;

/// <summary>
/// Runs the compose file's Apm processes natively: two `apm aggregator` and one `apm server` child processes with
/// exactly the environment docker-compose.yml gives them, except that service addresses become the real local
/// stand-ins (a three-broker Kafka protocol cluster, influxd, aiosmtpd), volume paths become temp directories and
/// listen addresses become free loopback ports. The topic job's and InfluxDB init script's work is done the same
/// way (the script's own statements are sent to influxd). Then simulated JVMs are published and must show up through
/// the server's authenticated API.
/// </summary>
public sealed class NativeComposeRunTests
{
    private const string ApiKey = "native-run-key";

    [Fact]
    public Task The_compose_configuration_starts_aggregators_and_a_healthy_server_that_store_and_serve_samples() => RunAsync(aggregatorHealth: false);

    // `apm aggregator` maps /healthz (and /metrics) twice: UseApmApi maps them, and ApmHost maps them again for every
    // role without the dashboard, so routing answers 500 (AmbiguousMatchException) and the compose health check fails.
    [Fact]
    public Task The_compose_health_checks_of_the_aggregators_pass() => RunAsync(aggregatorHealth: true);

    private static async Task RunAsync(bool aggregatorHealth)
    {
        var compose = ComposeFile.Load();
        using var kafka = EmbeddedKafkaCluster.Start(3);
        TopicAdmin.EnsureTopics(kafka, ApmTopics.All, partitions: 6);
        await using var influx = await InfluxServer.StartAsync();
        using var smtp = await SmtpServer.StartNewAsync();
        var root = Path.Combine(Path.GetTempPath(), "apm-native-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var children = new List<(string Name, Process Process, int Port, System.Text.StringBuilder Log)>();
        try
        {
            await RunInfluxInitAsync(compose, influx);
            foreach (var name in new[] { "aggregator-1", "aggregator-2", "server" })
            {
                children.Add(Start(compose, name, kafka.BootstrapServers, influx.Url, smtp.Port, root));
            }

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            foreach (var (name, process, port, log) in children.Where(c => aggregatorHealth || c.Name == "server"))
            {
                var healthy = await EventuallyAsync(async () =>
                {
                    Assert.False(process.HasExited, $"{name} exited with {(process.HasExited ? process.ExitCode : 0)}:\n{log}");
                    return (await TryGetAsync(http, $"http://127.0.0.1:{port}/healthz")) == HttpStatusCode.OK;
                }, TimeSpan.FromSeconds(90));
                Assert.True(healthy, $"{name} never answered /healthz:\n{log}");
            }

            // Both aggregators join the one group and are given partitions (before the fleet is published: with the
            // compose file's default session timeout a group that is still settling can take most of a minute on a busy
            // machine, and the samples would wait for it).
            foreach (var (name, process, _, log) in children.Where(c => c.Name.StartsWith("aggregator", StringComparison.Ordinal)))
            {
                Assert.True(await EventuallyAsync(() =>
                {
                    Assert.False(process.HasExited, $"{name} exited:\n{log}");
                    return Task.FromResult(Text(log).Contains("Partitions assigned:", StringComparison.Ordinal));
                }, TimeSpan.FromSeconds(120)), $"{name} was never assigned partitions:\n{log}");
            }

            // Publish a small simulated fleet through the collector's producer, as the collector service would.
            var fleet = new Fleet(12, leakingPercent: 25, restartingPercent: 0, jvmsPerHost: 6, DateTimeOffset.UtcNow, seed: 4);
            var metrics = new CollectorMetrics();
            using (var publisher = new CollectorPublisher(new KafkaOptions().WithBootstrapServers(kafka.BootstrapServers),
                new CollectorOptions { HostName = "native-run" }, metrics, NullLogger.Instance))
            {
                FleetRunner.Run(fleet, publisher, samplesPerSecond: 60, TimeSpan.FromSeconds(3), CancellationToken.None);
                Assert.Equal(0, publisher.Flush(TimeSpan.FromSeconds(30)));
            }

            var server = children.Single(c => c.Name == "server");
            using var unauthenticated = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{server.Port}/api/jvms");
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(unauthenticated)).StatusCode);
            string body = "";
            var listed = await EventuallyAsync(async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{server.Port}/api/jvms");
                request.Headers.Add("X-Api-Key", ApiKey);
                using var response = await http.SendAsync(request);
                body = await response.Content.ReadAsStringAsync();
                return response.IsSuccessStatusCode && fleet.Jvms.All(j => body.Contains(j.JvmId, StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(60));
            Assert.True(listed, $"the server did not list all 12 simulated JVMs: {body[..Math.Min(body.Length, 2000)]}\n{string.Join("\n", children.Select(c => c.Name + ":\n" + c.Log))}");

            // Neither aggregator stopped.
            foreach (var (name, process, _, log) in children.Where(c => c.Name.StartsWith("aggregator", StringComparison.Ordinal)))
            {
                Assert.False(process.HasExited, $"{name} exited:\n{log}");
            }
        }
        finally
        {
            foreach (var (_, process, _, _) in children)
            {
                if (!process.HasExited) process.Kill(true);
                process.Dispose();
            }

            try
            {
                Directory.Delete(root, true);
            }
            catch (IOException)
            {
                // A child may still be closing a file; the temp directory is left behind.
            }
        }
    }

    /// <summary>The InfluxDB service's first start: the database, then the compose file's init script.</summary>
    private static async Task RunInfluxInitAsync(ComposeFile compose, InfluxServer influx)
    {
        var influxService = compose.Service("influxdb");
        var database = ComposeFile.Environment(influxService)["INFLUXDB_DB"];
        var options = new InfluxOptions { Url = influx.Url, Database = database };
        using (var writer = new InfluxWriter(options)) await writer.EnsureDatabaseAsync();
        var script = ComposeFile.Volumes(influxService).Single(v => v.Source.EndsWith(".iql", StringComparison.Ordinal)).Source;
        using var query = new InfluxQueryClient(options);
        // The image runs the whole file as one `influx -execute` query; every statement must succeed.
        var result = await query.QueryAsync(await File.ReadAllTextAsync(Path.Combine(ComposeFile.RepoRoot, script)), database);
        Assert.Equal(3, result.Results.Count);
        var policies = await query.QueryAsync("SHOW RETENTION POLICIES", database);
        var defaults = policies.Series.Single().Values.Where(v => v[^1].GetBoolean()).Select(v => v[0].GetString()).ToList();
        Assert.Equal(["apm_30d"], defaults);
    }

    private static (string, Process, int, System.Text.StringBuilder) Start(ComposeFile compose, string name, string bootstrap, Uri influxUrl, int smtpPort, string root)
    {
        var service = compose.Service(name);
        var command = ComposeFile.Strings(service, "command").ToList();
        var port = FreePort.Next();
        var urlIndex = command.IndexOf("--urls") + 1;
        command[urlIndex] = $"http://127.0.0.1:{port}";
        var volumes = ComposeFile.Volumes(service);
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = root,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "apm.dll"));
        foreach (var arg in command) psi.ArgumentList.Add(arg);
        psi.Environment.Remove("ASPNETCORE_URLS");
        foreach (var (key, raw) in ComposeFile.Environment(service))
        {
            var value = key switch
            {
                "Apm__Kafka__BootstrapServers" => bootstrap,
                "Apm__Influx__Url" => influxUrl.ToString(),
                "Apm__Smtp__Host" => SmtpServer.Host,
                "Apm__Smtp__Port" => smtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "Apm__Auth__ApiKey" => ApiKey,
                "Apm__Influx__Password" => "not-checked-by-a-local-influxd",
                _ => ComposeFile.Resolve(raw),
            };
            // A path inside a volume becomes the same path under a temp directory per volume (shared volumes stay shared).
            var volume = volumes.FirstOrDefault(v => value == v.Target || value.StartsWith(v.Target + "/", StringComparison.Ordinal));
            if (volume.Source is not null) value = Path.Combine(root, volume.Source) + value[volume.Target.Length..];
            else if (value.StartsWith("/var/lib/", StringComparison.Ordinal)) value = Path.Combine(root, name + "-" + Path.GetFileName(value));
            psi.Environment[key] = value;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start dotnet apm.dll");
        var log = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (name, process, port, log);
    }

    private static string Text(System.Text.StringBuilder log)
    {
        lock (log) return log.ToString();
    }

    private static async Task<HttpStatusCode?> TryGetAsync(HttpClient http, string url)
    {
        try
        {
            using var response = await http.GetAsync(url);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await condition()) return true;
            await Task.Delay(250);
        }

        return await condition();
    }
}
