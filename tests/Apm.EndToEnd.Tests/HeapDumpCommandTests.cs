using Apm.Collector;
using Apm.Collector.Commands;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Testing;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Apm.EndToEnd.Tests;

/// <summary>The collector's heap-dump commands: every guard refuses with its reason, and none blocks sampling.</summary>
public sealed class HeapDumpCommandTests
{
    [Fact]
    public async Task Commands_for_an_unknown_JVM_another_host_or_past_their_expiry_are_refused_or_ignored_with_reasons()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        using var collector = new CollectorService(
            Options.Create(new CollectorOptions
            {
                SampleInterval = TimeSpan.FromSeconds(1),
                FinalizerInterval = TimeSpan.Zero,
                HistogramInterval = TimeSpan.Zero,
                HostName = "cmd-host",
                HeapDump = new HeapDumpOptions { Directory = dumps.FullName },
            }),
            Options.Create(pipeline.KafkaOptions), new CollectorMetrics(), NullLogger<CollectorService>.Instance);
        await collector.StartAsync(CancellationToken.None);
        try
        {
            Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(collector.CommandsReady), TimeSpan.FromSeconds(30)), "the command listener never got its partitions");
            using var producer = new ProducerBuilder<string, byte[]>(pipeline.KafkaOptions.CreateProducerConfig()).Build();
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            void Send(string host, string jvm, long expires) => producer.Produce(ApmTopics.Commands, new Message<string, byte[]>
            {
                Key = host,
                Value = new CollectorCommand { CommandId = Guid.NewGuid().ToString("N"), TargetHost = host, JvmId = jvm, IssuedUnixMs = now, ExpiresUnixMs = expires, Trigger = "cli", HeapDump = new HeapDumpRequest() }.ToByteArray(),
            });
            Send("cmd-host", "cmd-host:999999:1", now + 60_000);
            Send("cmd-host", "cmd-host:999998:1", now - 1);
            Send("other-host", "other-host:1:1", now + 60_000);
            producer.Produce(ApmTopics.Commands, new Message<string, byte[]> { Key = "cmd-host", Value = [0xff, 0xff, 0xff] });
            producer.Flush(TimeSpan.FromSeconds(10));

            Assert.True(await Pipeline.EventuallyAsync(
                () => Task.FromResult(collector.HeapDumps!.Outcomes.GetValueOrDefault("jvm-gone") == 1 && collector.HeapDumps.Outcomes.GetValueOrDefault("expired") == 1),
                TimeSpan.FromSeconds(30)), "outcomes: " + string.Join(", ", collector.HeapDumps!.Outcomes.Select(o => o.Key + "=" + o.Value)));
            Assert.Equal(2, collector.HeapDumps.Outcomes.Values.Sum()); // the other host's command was not ours

            // The refusals reach the store with their reasons.
            List<string> failures = [];
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                var r = await pipeline.Query.QueryAsync("SELECT \"failure\", \"reason\" FROM \"apm.command\" WHERE \"host\" = 'cmd-host'");
                failures = r.Series.SelectMany(x => x.Values).Select(v => v[1].GetString() + ": " + v[2].GetString()).ToList();
                return failures.Count == 2;
            }, TimeSpan.FromSeconds(30)), "stored results: " + string.Join(" | ", failures));
            Assert.Contains(failures, f => f.StartsWith("jvm-gone: ", StringComparison.Ordinal) && f.Contains("cmd-host:999999:1", StringComparison.Ordinal));
            Assert.Contains(failures, f => f.StartsWith("expired: ", StringComparison.Ordinal));
            Assert.Null(aggregator.Failure);
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
            dumps.Delete(true);
        }
    }

    private static CollectorCommand Command(JvmIdentity jvm) => new()
    {
        CommandId = Guid.NewGuid().ToString("N"),
        TargetHost = jvm.Host,
        JvmId = jvm.JvmId,
        IssuedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        ExpiresUnixMs = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeMilliseconds(),
        Trigger = "cli",
        HeapDump = new HeapDumpRequest(),
    };

    private static JvmIdentity Identity(JavaFixture jvm) => new() { JvmId = $"guard:{jvm.Pid}:1", Host = "guard-host", Pid = jvm.Pid, MainClass = jvm.MainClass };

    [Fact]
    public async Task A_real_dump_is_triaged_into_report_chunks_and_deleted_and_each_guard_refuses_with_its_reason()
    {
        using var leak = JavaFixture.Start("CancelTimerLeak", ["-Xmx128m", "-XX:+UseSerialGC"], ["3000"]);
        using var idle = JavaFixture.Start("IdleService", ["-Xmx64m"]);
        await leak.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        await idle.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        try
        {
            var results = new System.Collections.Concurrent.ConcurrentQueue<CommandResult>();
            var chunks = new System.Collections.Concurrent.ConcurrentQueue<TriageReportChunk>();
            HeapDumpHandler Handler(HeapDumpOptions o) => new(o, NullLogger.Instance, m => results.Enqueue(m.CommandResult), chunks.Enqueue);
            var options = new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = 1 << 20, MinInterval = TimeSpan.FromHours(1) };

            // A dump that works: accepted, running, done; the chunks make a report naming the pattern; the dump is gone.
            var handler = Handler(options);
            var done = await handler.HandleAsync(Command(Identity(leak)), Identity(leak), CancellationToken.None);
            Assert.True(done.State == CommandResult.Types.State.Done, $"{done.Failure}: {done.Reason}");
            Assert.Equal([CommandResult.Types.State.Accepted, CommandResult.Types.State.Running, CommandResult.Types.State.Done], results.Select(r => r.State));
            var report = Apm.Reports.ReportChunks.Join(chunks.ToList());
            Assert.Equal(done.ReportId, report.Meta.Id);
            Assert.Contains("CancelTimerLeak$CancelTimerLeakStatement", report.Meta.TopFinding, StringComparison.Ordinal);
            Assert.Contains("timer-retained-finalizable", System.Text.Encoding.UTF8.GetString(report.Json), StringComparison.Ordinal);
            Assert.StartsWith("<!DOCTYPE html>", System.Text.Encoding.UTF8.GetString(report.Html), StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFiles(dumps.FullName));

            // The same JVM again within the minimum interval: too soon.
            var again = await handler.HandleAsync(Command(Identity(leak)), Identity(leak), CancellationToken.None);
            Assert.Equal("too-soon", again.Failure);

            // Free disk below the configured minimum (a nearly full disk, simulated by the threshold): refused before dumping.
            var full = await Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = long.MaxValue })
                .HandleAsync(Command(Identity(idle)), Identity(idle), CancellationToken.None);
            Assert.Equal("disk-full", full.Failure);
            Assert.Contains("free", full.Reason, StringComparison.Ordinal);

            // The triage child over its memory limit is stopped by the runtime and reported as such; the dump is deleted.
            var tiny = await Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = 1 << 20, TriageMemoryLimitBytes = 4 << 20 })
                .HandleAsync(Command(Identity(leak)), Identity(leak), CancellationToken.None);
            Assert.True(tiny.Failure == "triage-memory-limit", $"{tiny.Failure}: {tiny.Reason}");
            Assert.Empty(Directory.EnumerateFiles(dumps.FullName));

            // One dump at a time per host: a second command waits its turn (both are done, one after the other)...
            var busyHandler = Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = 1 << 20, MinInterval = TimeSpan.Zero });
            var first = busyHandler.HandleAsync(Command(Identity(leak)), Identity(leak), CancellationToken.None);
            var second = await busyHandler.HandleAsync(Command(Identity(idle)), Identity(idle), CancellationToken.None);
            Assert.Equal(CommandResult.Types.State.Done, (await first).State);
            Assert.True(second.State == CommandResult.Types.State.Done, $"{second.Failure}: {second.Reason}");
            // ...but not past its expiry: then it is refused as busy.
            var third = busyHandler.HandleAsync(Command(Identity(leak)), Identity(leak), CancellationToken.None);
            var late = Command(Identity(idle));
            late.ExpiresUnixMs = DateTimeOffset.UtcNow.AddMilliseconds(300).ToUnixTimeMilliseconds();
            var refused = await busyHandler.HandleAsync(late, Identity(idle), CancellationToken.None);
            Assert.True(refused.Failure == "busy", $"{refused.Failure}: {refused.Reason}");
            Assert.Equal(CommandResult.Types.State.Done, (await third).State);

            // A dump growing past the size limit is abandoned and deleted (the limit is watched while the JVM writes).
            var large = await Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = 1 << 20, MaxBytes = 64 * 1024 })
                .HandleAsync(Command(Identity(leak)), Identity(leak), CancellationToken.None);
            Assert.True(large.Failure is "too-large", $"{large.Failure}: {large.Reason}");
            Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(!Directory.EnumerateFiles(dumps.FullName).Any()), TimeSpan.FromSeconds(30)),
                "the abandoned dump was not deleted");

            // A JVM that exited between the command and the dump: the attach fails with a reason.
            idle.Kill();
            var gone = await Handler(options).HandleAsync(Command(Identity(idle)), Identity(idle), CancellationToken.None);
            Assert.Equal("attach-failed", gone.Failure);
        }
        finally
        {
            dumps.Delete(true);
        }
    }

    /// <summary>Sends commands to the real (mock-cluster) commands topic, as `apm up` does.</summary>
    private sealed class TopicCommandSender(KafkaOptions kafka) : Apm.Server.ICommandSender, IDisposable
    {
        private readonly IProducer<string, byte[]> _producer = new ProducerBuilder<string, byte[]>(kafka.CreateProducerConfig()).Build();

        public async Task SendAsync(CollectorCommand command, CancellationToken ct) =>
            await _producer.ProduceAsync(ApmTopics.Commands, new Message<string, byte[]> { Key = command.TargetHost, Value = command.ToByteArray() }, ct);

        public void Dispose() => _producer.Dispose();
    }

    [Fact]
    public async Task The_API_asks_a_live_JVMs_collector_for_a_dump_and_refuses_unknown_JVMs()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        using var sender = new TopicCommandSender(pipeline.KafkaOptions);
        var api = await pipeline.StartApiAsync(commands: sender);
        using var jvm = JavaFixture.Start("IdleService", ["-Xmx64m"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        using var collector = new CollectorService(
            Options.Create(new CollectorOptions
            {
                SampleInterval = TimeSpan.FromSeconds(1),
                FinalizerInterval = TimeSpan.Zero,
                HistogramInterval = TimeSpan.Zero,
                HostName = "api-dump-host",
                HeapDump = new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = 1 << 20 },
            }),
            Options.Create(pipeline.KafkaOptions), new CollectorMetrics(), NullLogger<CollectorService>.Instance);
        await collector.StartAsync(CancellationToken.None);
        try
        {
            var metrics = collector.Metrics;
            string? id = null;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                var list = await System.Net.Http.Json.HttpClientJsonExtensions.GetFromJsonAsync<System.Text.Json.JsonElement>(api, "/api/jvms");
                id = list.EnumerateArray().Where(j => j.GetProperty("pid").GetInt32() == jvm.Pid).Select(j => j.GetProperty("id").GetString()).FirstOrDefault();
                return id != null;
            }, TimeSpan.FromSeconds(30)), "the JVM never appeared");

            var unknown = await api.PostAsync("/api/jvms/nobody:1:1/heap-dump", null);
            Assert.Equal(System.Net.HttpStatusCode.NotFound, unknown.StatusCode);

            var samplesBefore = metrics.SamplesPublished;
            var response = await api.PostAsync($"/api/jvms/{Uri.EscapeDataString(id!)}/heap-dump", null);
            Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
            var body = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            var commandId = body.GetProperty("commandId").GetString();
            Assert.Equal("api-dump-host", body.GetProperty("host").GetString());

            // The collector took the dump, triaged it and reported done; the result is stored with the command id.
            List<string> states = [];
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                var r = await pipeline.Query.QueryAsync($"SELECT \"state\", \"reason\" FROM \"apm.command\" WHERE \"command_id\" = '{commandId}'");
                states = r.Series.SelectMany(x => x.Values).Select(v => v[1].GetString() + " " + v[2].GetString()).ToList();
                return states.Any(s => s.StartsWith("done", StringComparison.Ordinal) || s.StartsWith("failed", StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(90)), "command results: " + string.Join(" | ", states));
            Assert.StartsWith("done", states[^1], StringComparison.Ordinal);
            // Sampling went on while the dump was taken and triaged (it runs on its own task).
            Assert.True(metrics.SamplesPublished > samplesBefore, $"no samples published during the dump ({samplesBefore} before, {metrics.SamplesPublished} after)");
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
            dumps.Delete(true);
        }
    }
}
