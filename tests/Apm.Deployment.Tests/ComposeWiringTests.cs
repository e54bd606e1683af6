using System.Text.Json;
using System.Text.RegularExpressions;
using Apm.Kafka;

namespace Apm.Deployment.Tests;

/// <summary>
/// docker-compose.yml cannot run here (no Docker engine), so its wiring is checked by reading it: services, Kafka's
/// KRaft quorum and replication, ports against listen URLs, dependencies, health checks, volumes, and every Apm
/// environment name against the documentation and the options classes.
/// </summary>
public sealed partial class ComposeWiringTests
{
    private static readonly ComposeFile Compose = ComposeFile.Load();
    private static readonly string[] Brokers = ["kafka-1", "kafka-2", "kafka-3"];
    private static readonly string[] ApmServices = ["aggregator-1", "aggregator-2", "server", "collector"];

    [Fact]
    public void Every_part_of_the_distributed_deployment_is_a_service()
    {
        var names = Compose.Services.EnumerateObject().Select(p => p.Name).ToHashSet();
        string[] expected = [.. Brokers, "kafka-init", "influxdb", "mailpit", "aggregator-1", "aggregator-2", "server", "collector", "demo-jvm"];
        Assert.Empty(expected.Except(names));
        Assert.Equal(2, ApmServices.Count(s => Command(s)[0] == "aggregator"));
        Assert.Equal("server", Command("server")[0]);
        Assert.Equal("collector", Command("collector")[0]);
    }

    [Fact]
    public void Kafka_runs_three_kraft_nodes_that_vote_together_and_replicate_three_times()
    {
        var envs = Brokers.Select(b => ComposeFile.Environment(Compose.Service(b))).ToList();
        Assert.Single(envs.Select(e => e["CLUSTER_ID"]).Distinct());
        Assert.Equal(["1", "2", "3"], envs.Select(e => e["KAFKA_NODE_ID"]).Order());
        foreach (var (broker, env) in Brokers.Zip(envs))
        {
            Assert.Contains("controller", env["KAFKA_PROCESS_ROLES"], StringComparison.Ordinal);
            Assert.Contains("broker", env["KAFKA_PROCESS_ROLES"], StringComparison.Ordinal);
            Assert.Equal($"PLAINTEXT://{broker}:9092", env["KAFKA_ADVERTISED_LISTENERS"]);
            // The quorum names every node by its id and host name.
            var voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].Split(',').ToHashSet();
            Assert.Equal(Brokers.Select((b, i) => $"{i + 1}@{b}:9093").ToHashSet(), voters);
            Assert.Equal("3", env["KAFKA_DEFAULT_REPLICATION_FACTOR"]);
            Assert.Equal("3", env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]);
            Assert.Equal("2", env["KAFKA_MIN_INSYNC_REPLICAS"]);
            // Its log directory is a named (persistent) volume of its own.
            var volume = Assert.Single(ComposeFile.Volumes(Compose.Service(broker)), v => v.Target == env["KAFKA_LOG_DIRS"]);
            Assert.Equal($"{broker}-data", volume.Source);
            Assert.True(HasHealthCheck(broker), $"{broker} has no health check");
        }
    }

    [Fact]
    public void The_topic_job_creates_every_apm_topic_with_replication_three_after_all_brokers_are_healthy()
    {
        var init = Compose.Service("kafka-init");
        var env = ComposeFile.Environment(init);
        Assert.Equal("3", env["REPLICATION_FACTOR"]);
        Assert.Equal(Brokers.Select(b => b + ":9092").ToHashSet(), env["BOOTSTRAP"].Split(',').ToHashSet());
        Assert.All(Brokers, b => Assert.Equal("service_healthy", ComposeFile.DependsOn(init)[b]));
        var script = Assert.Single(ComposeFile.Volumes(init), v => v.Source.EndsWith(".sh", StringComparison.Ordinal));
        var text = File.ReadAllText(Path.Combine(ComposeFile.RepoRoot, script.Source));
        var created = TopicLine().Matches(text).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(ApmTopics.All.ToHashSet(), created);
        Assert.Contains("--replication-factor \"$REPLICATION_FACTOR\"", text, StringComparison.Ordinal);
        Assert.Contains("min.insync.replicas=2", text, StringComparison.Ordinal);
        Assert.Equal("false", ComposeFile.Environment(Compose.Service(Brokers[0]))["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]);
    }

    [Fact]
    public void Apm_services_reach_the_brokers_influxdb_and_smtp_by_their_service_names_and_wait_for_them()
    {
        foreach (var name in ApmServices)
        {
            var service = Compose.Service(name);
            var env = ComposeFile.Environment(service);
            Assert.Equal(Brokers.Select(b => b + ":9092").ToHashSet(), env["Apm__Kafka__BootstrapServers"].Split(',').ToHashSet());
            Assert.Equal("service_completed_successfully", ComposeFile.DependsOn(service)["kafka-init"]);
            if (name == "collector") continue;
            var influx = new Uri(env["Apm__Influx__Url"]);
            Assert.Equal("influxdb", influx.Host);
            Assert.Equal(8086, influx.Port);
            Assert.Equal("service_healthy", ComposeFile.DependsOn(service)["influxdb"]);
        }

        foreach (var name in new[] { "aggregator-1", "aggregator-2" })
        {
            var env = ComposeFile.Environment(Compose.Service(name));
            Assert.Equal("mailpit", env["Apm__Smtp__Host"]);
            Assert.Equal("1025", env["Apm__Smtp__Port"]);
            Assert.Equal("service_healthy", ComposeFile.DependsOn(Compose.Service(name))["mailpit"]);
            Assert.False(string.IsNullOrEmpty(ComposeFile.Resolve(env["Apm__Smtp__From"])));
            Assert.False(string.IsNullOrEmpty(ComposeFile.Resolve(env["Apm__Alerts__To"])));
        }

        // The retention policy Apm writes to is the one the InfluxDB init script creates.
        var rp = ComposeFile.Environment(Compose.Service("server"))["Apm__Influx__RetentionPolicy"];
        var iql = Assert.Single(ComposeFile.Volumes(Compose.Service("influxdb")), v => v.Source.EndsWith(".iql", StringComparison.Ordinal));
        Assert.Contains($"CREATE RETENTION POLICY \"{rp}\"", File.ReadAllText(Path.Combine(ComposeFile.RepoRoot, iql.Source)), StringComparison.Ordinal);
    }

    [Fact]
    public void The_two_aggregators_share_one_consumer_group_and_the_report_store_but_keep_their_own_outbox()
    {
        var a = ComposeFile.Environment(Compose.Service("aggregator-1"));
        var b = ComposeFile.Environment(Compose.Service("aggregator-2"));
        Assert.Equal(a["Apm__Aggregator__GroupId"], b["Apm__Aggregator__GroupId"]);
        var va = ComposeFile.Volumes(Compose.Service("aggregator-1"));
        var vb = ComposeFile.Volumes(Compose.Service("aggregator-2"));
        var vs = ComposeFile.Volumes(Compose.Service("server"));
        string Source(IReadOnlyList<(string Source, string Target)> volumes, string path) =>
            Assert.Single(volumes, v => path == v.Target || path.StartsWith(v.Target + "/", StringComparison.Ordinal)).Source;

        Assert.NotEqual(Source(va, a["Apm__Alerts__OutboxDirectory"]), Source(vb, b["Apm__Alerts__OutboxDirectory"]));
        var reports = Source(va, a["Apm__Reports__Directory"]);
        Assert.Equal(reports, Source(vb, b["Apm__Reports__Directory"]));
        Assert.Equal(reports, Source(vs, ComposeFile.Environment(Compose.Service("server"))["Apm__Reports__Directory"]));
    }

    [Fact]
    public void Ports_health_checks_and_listen_urls_agree_and_every_non_loopback_listener_has_authentication()
    {
        foreach (var name in ApmServices)
        {
            var command = Command(name);
            var url = new Uri(command[command.ToList().IndexOf("--urls") + 1]);
            var health = HealthCheck(name);
            Assert.Contains($":{url.Port}/healthz", health, StringComparison.Ordinal);
            var env = ComposeFile.Environment(Compose.Service(name));
            if (url.Host is not ("127.0.0.1" or "localhost"))
            {
                Assert.True(env.ContainsKey("Apm__Auth__ApiKey") || env.Keys.Any(k => k.StartsWith("Apm__Auth__Users__", StringComparison.Ordinal)),
                    $"{name} listens on {url} without Apm__Auth__ApiKey or Apm__Auth__Users__*: apm refuses to start");
            }
        }

        var ports = ComposeFile.Strings(Compose.Service("server"), "ports");
        Assert.Contains("127.0.0.1:5080:5080", ports);
        foreach (var name in Compose.Services.EnumerateObject().Select(p => p.Name).Where(n => n != "kafka-init"))
        {
            Assert.True(HasHealthCheck(name), $"{name} has no health check");
        }
    }

    [Fact]
    public void The_collector_sees_the_hosts_processes_and_tmp_and_runs_as_root_for_the_attach_protocol()
    {
        var collector = Compose.Service("collector");
        Assert.Equal("host", collector.GetProperty("pid").GetString());
        Assert.Contains(("/tmp", "/tmp"), ComposeFile.Volumes(collector));
        Assert.Equal("/tmp", ComposeFile.Environment(collector)["Apm__Collector__TmpRoot"]);
        Assert.Equal("0:0", collector.GetProperty("user").GetString());
    }

    [Fact]
    public void Every_named_volume_is_declared_and_every_file_the_compose_file_names_exists()
    {
        var declared = Compose.Root.GetProperty("volumes").EnumerateObject().Select(p => p.Name).ToHashSet();
        foreach (var service in Compose.Services.EnumerateObject())
        {
            foreach (var (source, _) in ComposeFile.Volumes(service.Value))
            {
                if (source.StartsWith('/')) continue; // a host path (the collector's /tmp)
                if (source.StartsWith("./", StringComparison.Ordinal)) Assert.True(File.Exists(Path.Combine(ComposeFile.RepoRoot, source)), $"{service.Name}: {source} missing");
                else Assert.Contains(source, declared);
            }

            if (service.Value.TryGetProperty("build", out var build))
            {
                var dockerfile = Path.Combine(ComposeFile.RepoRoot, build.GetProperty("dockerfile").GetString()!);
                Assert.True(File.Exists(dockerfile), $"{service.Name}: {dockerfile} missing");
                foreach (Match m in CopySource().Matches(File.ReadAllText(dockerfile)))
                {
                    var path = Path.Combine(ComposeFile.RepoRoot, m.Groups[1].Value);
                    Assert.True(File.Exists(path) || Directory.Exists(path), $"{dockerfile}: COPY source {m.Groups[1].Value} missing");
                }
            }
        }

        string[] persistent = ["kafka-1-data", "kafka-2-data", "kafka-3-data", "influx-data", "aggregator-1-data", "aggregator-2-data", "reports"];
        Assert.Empty(persistent.Except(declared));
    }

    [Fact]
    public void Every_apm_environment_name_is_documented_and_binds_to_an_options_property()
    {
        var names = Compose.Services.EnumerateObject()
            .SelectMany(s => ComposeFile.Environment(s.Value).Keys)
            .Where(k => k.StartsWith("Apm", StringComparison.OrdinalIgnoreCase))
            .Distinct()
            .ToList();
        Assert.True(names.Count >= 20, $"only {names.Count} Apm names found");
        var problems = names.Select(ConfigurationNames.Problem).OfType<string>().ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Theory]
    [InlineData("Apm__Kafka__BootstrapServer")]
    [InlineData("Apm__Influx__Urls")]
    [InlineData("Apm__Aggregator__Group")]
    [InlineData("APM_KAFKA_BOOTSTRAP")]
    public void A_misspelt_name_is_caught(string name) => Assert.NotNull(ConfigurationNames.Problem(name));

    private static string[] Command(string service) => ComposeFile.Strings(Compose.Service(service), "command").ToArray();

    private static bool HasHealthCheck(string service) =>
        Compose.Service(service).TryGetProperty("healthcheck", out var h) && h.TryGetProperty("test", out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 1;

    private static string HealthCheck(string service) =>
        string.Join(' ', Compose.Service(service).GetProperty("healthcheck").GetProperty("test").EnumerateArray().Select(x => x.GetString()));

    [GeneratedRegex(@"^topic (\S+)", RegexOptions.Multiline)]
    private static partial Regex TopicLine();

    [GeneratedRegex(@"^COPY (?!--from)(\S+) ", RegexOptions.Multiline)]
    private static partial Regex CopySource();
}
