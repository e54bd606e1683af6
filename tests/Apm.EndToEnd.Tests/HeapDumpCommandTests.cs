using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Apm.Collector;
using Apm.Collector.Commands;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Testing;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;
using State = Apm.Protocol.V1.CommandResult.Types.State;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// The collector's heap-dump commands against real JVMs: every guard refuses with its reason, a guard that can change
/// while a command waits is checked again when its turn comes, an abandoned dump holds the host until the JVM stops
/// writing it, and none of them stops the collector sampling its JVMs.
/// </summary>
/// <remarks>
/// A JVM held with SIGSTOP (<see cref="JavaFixture.Pause"/>) after its attach listener is up still accepts the attach
/// connection and the request (the kernel queues them) but answers nothing: so a dump "runs" for exactly as long as a
/// test needs, without timing.
/// </remarks>
public sealed class HeapDumpCommandTests(ITestOutputHelper output)
{
    private const long MiB = 1L << 20;

    [Fact]
    public async Task Commands_for_an_unknown_JVM_another_host_or_past_their_expiry_are_refused_or_ignored_with_reasons()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        using var idle = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        await using var rig = CommandRig.Start(pipeline.KafkaOptions);
        try
        {
            var collector = await rig.StartCollectorAsync("cmd-host", new HeapDumpOptions { Directory = dumps.FullName });
            var jvm = await rig.JvmAsync("cmd-host", idle.Pid);
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
            await rig.SamplingGoesOnAsync("after the refusals", jvm);
            Assert.Null(aggregator.Failure);
        }
        finally
        {
            dumps.Delete(true);
        }
    }

    [Fact]
    public async Task Commands_queued_behind_a_running_dump_are_checked_again_when_their_turn_comes_so_two_for_one_JVM_dump_it_once()
    {
        using var held = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        using var target = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        using var leaving = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        await using var rig = CommandRig.Start();
        try
        {
            const string host = "guard-queue";
            await rig.StartCollectorAsync(host, new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = MiB, MinInterval = TimeSpan.FromHours(1) });
            var heldJvm = await rig.JvmAsync(host, held.Pid);
            var targetJvm = await rig.JvmAsync(host, target.Pid);
            var leavingJvm = await rig.JvmAsync(host, leaving.Pid);

            // A dump that runs until the test lets it: the JVM takes the request but is stopped.
            var first = await StartHeldDumpAsync(rig, held, heldJvm);

            // Two commands for one JVM, one for a JVM about to exit, one that expires while it waits: all wait their turn.
            var a = rig.Send(targetJvm);
            var b = rig.Send(targetJvm);
            var toLeaving = rig.Send(leavingJvm);
            var expiring = rig.Send(targetJvm, TimeSpan.FromSeconds(15));
            foreach (var c in new[] { a, b, toLeaving, expiring }) await rig.WaitForAsync(c.CommandId, r => r.State == State.Queued, "queued");
            leaving.Kill();
            await rig.WaitGoneAsync(leavingJvm);
            var busy = await rig.FinalAsync(expiring.CommandId);
            Assert.True(busy.Failure == "busy", rig.Describe(expiring.CommandId));
            await rig.SamplingGoesOnAsync("while a dump held the host", heldJvm, targetJvm);

            held.Resume();
            Assert.Equal(State.Done, (await rig.FinalAsync(first.CommandId)).State);
            var finals = new[] { await rig.FinalAsync(a.CommandId), await rig.FinalAsync(b.CommandId) };
            var log = $"a: {rig.Describe(a.CommandId)}\nb: {rig.Describe(b.CommandId)}";
            // The JVM was dumped once: the second command saw the first one's dump when its turn came.
            Assert.True(finals.Count(f => f.State == State.Done) == 1, log);
            var tooSoon = Assert.Single(finals, f => f.Failure == "too-soon");
            Assert.Contains("checked again after waiting", tooSoon.Reason, StringComparison.Ordinal);
            Assert.Equal([State.Queued, State.Failed], rig.Results(tooSoon.CommandId).Select(r => r.State));
            // The JVM that exited while its command waited: refused when its turn came, without touching the attach socket.
            var gone = await rig.FinalAsync(toLeaving.CommandId);
            Assert.True(gone.Failure == "jvm-gone", rig.Describe(toLeaving.CommandId));
            Assert.Contains("checked again after waiting", gone.Reason, StringComparison.Ordinal);
            Assert.Equal([State.Queued, State.Failed], rig.Results(toLeaving.CommandId).Select(r => r.State));
            await rig.SamplingGoesOnAsync("after the refusals", heldJvm, targetJvm);
            Assert.Empty(Directory.EnumerateFiles(dumps.FullName));
        }
        finally
        {
            held.Resume();
            dumps.Delete(true);
        }
    }

    [Fact]
    public async Task A_dump_abandoned_at_the_size_limit_is_refused_at_once_and_holds_the_host_until_the_JVM_stops_writing_it()
    {
        // About 100 MB of dump, written in well under a second but over many writes.
        using var big = await StartJvmAsync("CancelTimerLeak", ["-Xmx512m", "-XX:+UseSerialGC"], ["200000"]);
        using var next = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        await using var rig = CommandRig.Start();
        try
        {
            const string host = "guard-abandon";
            const long limit = 4 * MiB;
            await rig.StartCollectorAsync(host, new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = MiB, MaxBytes = limit, MinInterval = TimeSpan.Zero });
            var bigJvm = await rig.JvmAsync(host, big.Pid);
            var nextJvm = await rig.JvmAsync(host, next.Pid);
            var first = await StartHeldDumpAsync(rig, big, bigJvm);
            var queued = rig.Send(nextJvm);
            await rig.WaitForAsync(queued.CommandId, r => r.State == State.Queued, "queued");

            // Let the JVM write until the file passes the limit, then stop it in the middle of writing.
            var file = Path.Combine(dumps.FullName, $"apm-{first.CommandId}.hprof");
            var stopped = Task.Factory.StartNew(() =>
            {
                var deadline = Stopwatch.StartNew();
                while (!(File.Exists(file) && new FileInfo(file).Length > limit))
                {
                    if (deadline.Elapsed > TimeSpan.FromMinutes(2)) return false;
                    Thread.SpinWait(100);
                }

                big.Pause();
                return true;
            }, TaskCreationOptions.LongRunning);
            big.Resume();
            Assert.True(await stopped, "the dump never passed the limit");
            Assert.True(big.HoldsOpen(file), $"the JVM had finished its dump ({new FileInfo(file).Length} bytes) before it could be stopped");

            // The refusal comes at once, while the JVM still writes (it is stopped with the file open)...
            var refused = await rig.WaitForAsync(first.CommandId, r => r.State == State.Failed, "failed");
            Assert.True(refused.Failure == "too-large", rig.Describe(first.CommandId));
            Assert.Contains($"{limit}-byte limit", refused.Reason, StringComparison.Ordinal);
            // ...but the file stays until the JVM is done with it, and no other dump starts meanwhile.
            await rig.SamplingGoesOnAsync("while the abandoned dump held the host", bigJvm, nextJvm);
            Assert.True(File.Exists(file), "the partial dump was deleted while the JVM still wrote it");
            Assert.True(big.HoldsOpen(file));
            Assert.Equal([State.Queued], rig.Results(queued.CommandId).Select(r => r.State));

            // The JVM finishes writing: the partial file goes, and the waiting command gets the host.
            big.Resume();
            var accepted = await rig.WaitForAsync(queued.CommandId, r => r.State == State.Accepted, "accepted");
            Assert.True(accepted.TimeUnixNanos > refused.TimeUnixNanos);
            await rig.FinalAsync(queued.CommandId);
            Assert.False(File.Exists(file), "the partial dump was not deleted");
            Assert.False(big.HoldsOpen(file));
            Assert.Equal([State.Accepted, State.Running, State.Failed], rig.Results(first.CommandId).Select(r => r.State));
            await rig.SamplingGoesOnAsync("after the abandoned dump", bigJvm, nextJvm);
        }
        finally
        {
            big.Resume();
            dumps.Delete(true);
        }
    }

    [Fact]
    public async Task Free_disk_falling_below_the_threshold_while_the_JVM_writes_abandons_the_dump_and_frees_the_space()
    {
        using var big = await StartJvmAsync("CancelTimerLeak", ["-Xmx512m", "-XX:+UseSerialGC"], ["200000"]);
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        // A 32 MiB file system that the 100 MB dump fills; the threshold lets the dump start and stops it 8 MiB in.
        var small = TryMountTmpfs(dumps.FullName, 32 * MiB, out var whyNot);
        long threshold;
        if (small)
        {
            output.WriteLine($"A 32 MiB tmpfs on {dumps.FullName}.");
            threshold = 24 * MiB;
        }
        else
        {
            // Without the right to mount: the same check against the free space of the temp file system as it is now.
            output.WriteLine($"No small file system ({whyNot}); the threshold is set 8 MiB below the free space of {dumps.FullName} instead.");
            threshold = new DriveInfo(dumps.FullName).AvailableFreeSpace - (8 * MiB);
        }

        await using var rig = CommandRig.Start();
        try
        {
            const string host = "guard-disk-during";
            await rig.StartCollectorAsync(host, new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = threshold });
            var bigJvm = await rig.JvmAsync(host, big.Pid);
            var command = rig.Send(bigJvm);
            var final = await rig.FinalAsync(command.CommandId);
            var states = rig.Results(command.CommandId);
            // The check before the dump passed; the one while the JVM wrote it did not.
            Assert.True(final.Failure == "disk-full", rig.Describe(command.CommandId));
            Assert.Contains("while dumping", final.Reason, StringComparison.Ordinal);
            Assert.Equal([State.Accepted, State.Running, State.Failed], states.Select(r => r.State));
            // The refusal came at once; the partial dump goes once the JVM stopped writing it, and its space is free again.
            var file = Path.Combine(dumps.FullName, $"apm-{command.CommandId}.hprof");
            Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(!File.Exists(file)), TimeSpan.FromMinutes(2)), "the partial dump was not deleted");
            Assert.False(big.HoldsOpen(file));
            if (small) Assert.True(new DriveInfo(dumps.FullName).AvailableFreeSpace > threshold, "the space of the abandoned dump was not freed");
            await rig.SamplingGoesOnAsync("after the refusal", bigJvm);
            Assert.False(big.HasExited);
        }
        finally
        {
            await rig.DisposeAsync();
            if (small) JavaFixture.RunTool("umount", [dumps.FullName]);
            dumps.Delete(true);
        }
    }

    [Fact]
    public async Task Refusals_before_a_dump_and_a_triage_child_over_its_memory_limit_are_reported_while_sampling_goes_on()
    {
        using var jvm = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        await using var rig = CommandRig.Start();
        try
        {
            await rig.StartCollectorAsync("guard-memory", new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = MiB, TriageMemoryLimitBytes = 4 * MiB });
            // Free disk below the configured minimum (a nearly full disk, simulated by the threshold).
            await rig.StartCollectorAsync("guard-disk", new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = long.MaxValue });
            var onMemory = await rig.JvmAsync("guard-memory", jvm.Pid);
            var onDisk = await rig.JvmAsync("guard-disk", jvm.Pid);

            // The triage child over its memory limit is stopped and reported as such; the dump is deleted.
            var triage = rig.Send(onMemory);
            var tiny = await rig.FinalAsync(triage.CommandId);
            Assert.True(tiny.Failure == "triage-memory-limit", rig.Describe(triage.CommandId));
            Assert.Equal([State.Accepted, State.Running, State.Running, State.Failed], rig.Results(triage.CommandId).Select(r => r.State));
            Assert.Empty(Directory.EnumerateFiles(dumps.FullName));
            await rig.SamplingGoesOnAsync("after the triage failed", onMemory);

            // The same JVM again within the minimum interval: too soon, at once.
            var again = rig.Send(onMemory);
            Assert.True((await rig.FinalAsync(again.CommandId)).Failure == "too-soon", rig.Describe(again.CommandId));
            Assert.Equal([State.Failed], rig.Results(again.CommandId).Select(r => r.State));
            await rig.SamplingGoesOnAsync("after the too-soon refusal", onMemory);

            var disk = rig.Send(onDisk);
            var full = await rig.FinalAsync(disk.CommandId);
            Assert.True(full.Failure == "disk-full", rig.Describe(disk.CommandId));
            Assert.StartsWith("Only ", full.Reason, StringComparison.Ordinal);
            Assert.Equal([State.Failed], rig.Results(disk.CommandId).Select(r => r.State));
            await rig.SamplingGoesOnAsync("after the disk-full refusal", onDisk, onMemory);
        }
        finally
        {
            dumps.Delete(true);
        }
    }

    [Fact]
    public async Task A_dump_is_of_live_objects_unless_asked_triaged_into_report_chunks_and_deleted_unless_kept()
    {
        using var leak = await StartJvmAsync("CancelTimerLeak", ["-Xmx128m", "-XX:+UseSerialGC"], ["3000"]);
        using var idle = await StartJvmAsync("IdleService", ["-Xmx64m"]);
        var dumps = Directory.CreateTempSubdirectory("apm-dumps-");
        try
        {
            var results = new ConcurrentQueue<CommandResult>();
            var chunks = new ConcurrentQueue<TriageReportChunk>();
            var sent = new ConcurrentQueue<string>();
            var client = new Apm.Jvm.Attach.HotSpotAttachClient();
            // The real attach client, with the command lines it was given written down.
            HeapDumpHandler Handler(HeapDumpOptions o) => new(o, NullLogger.Instance, m => results.Enqueue(m.CommandResult), chunks.Enqueue,
                (pid, line, timeout, ct) =>
                {
                    sent.Enqueue(line);
                    return client.JcmdAsync(pid, line, timeout, ct);
                });

            // The default: accepted, running (the dump), running (the triage), done; a live-objects dump (no -all: the
            // JVM runs a full GC first); the chunks make a report naming the pattern; the dump is deleted.
            var command = Command(Identity(leak));
            var done = await Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = MiB }).HandleAsync(command, Identity(leak), CancellationToken.None);
            Assert.True(done.State == State.Done, $"{done.Failure}: {done.Reason}");
            Assert.Equal([State.Accepted, State.Running, State.Running, State.Done], results.Select(r => r.State));
            Assert.Equal([$"GC.heap_dump {Path.Combine(dumps.FullName, $"apm-{command.CommandId}.hprof")}"], sent);
            var report = Apm.Reports.ReportChunks.Join(chunks.ToList());
            Assert.Equal(done.ReportId, report.Meta.Id);
            Assert.Contains("CancelTimerLeak$CancelTimerLeakStatement", report.Meta.TopFinding, StringComparison.Ordinal);
            Assert.Contains("timer-retained-finalizable", System.Text.Encoding.UTF8.GetString(report.Json), StringComparison.Ordinal);
            Assert.StartsWith("<!DOCTYPE html>", System.Text.Encoding.UTF8.GetString(report.Html), StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFiles(dumps.FullName));

            // Every object when the command asks, and kept after the triage when configured: the file is the JVM's dump.
            sent.Clear();
            chunks.Clear();
            var all = Command(Identity(idle));
            all.HeapDump.AllObjects = true;
            var kept = await Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = MiB, KeepDumps = true }).HandleAsync(all, Identity(idle), CancellationToken.None);
            Assert.True(kept.State == State.Done, $"{kept.Failure}: {kept.Reason}");
            var file = Path.Combine(dumps.FullName, $"apm-{all.CommandId}.hprof");
            Assert.Equal([$"GC.heap_dump -all {file}"], sent);
            Assert.Equal([file], Directory.EnumerateFiles(dumps.FullName));
            Assert.Equal(Apm.Reports.ReportChunks.Join(chunks.ToList()).Meta.DumpBytes, new FileInfo(file).Length);
            using (var stream = File.OpenRead(file))
            {
                var header = new byte[19];
                stream.ReadExactly(header);
                Assert.Equal("JAVA PROFILE 1.0.2\0", System.Text.Encoding.ASCII.GetString(header));
            }

            // A JVM that exited after the collector last saw it: the attach fails with a reason.
            idle.Kill();
            var gone = await Handler(new HeapDumpOptions { Directory = dumps.FullName, MinFreeBytes = MiB }).HandleAsync(Command(Identity(idle)), Identity(idle), CancellationToken.None);
            Assert.Equal("attach-failed", gone.Failure);
        }
        finally
        {
            dumps.Delete(true);
        }
    }

    [Fact]
    public async Task A_rule_triggered_dump_the_collector_refuses_leaves_the_alert_firing_and_stored_and_sampling_going_on()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var state = Directory.CreateTempSubdirectory("apm-rule-dump-");
        var apiPort = FreePort.Next();
        // The leak rules at test speed, FinalizerBacklog asking for heap dumps; no e-mail.
        using var aggregator = ChildProcess.StartAggregator(pipeline, apiPort, new Dictionary<string, string>
        {
            ["Apm__DataDirectory"] = state.FullName,
            ["Apm__Alerts__HeapDumpRules"] = "FinalizerBacklog",
            ["Apm__Alerts__Lifecycle__ClearFor"] = "00:05:00",
        });
        using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}") };
        using var slow = await StartJvmAsync("SlowFinalizer", ["-Xmx256m", "-XX:+UseSerialGC"]);
        await using var rig = CommandRig.Start(pipeline.KafkaOptions);
        try
        {
            // A collector whose disk is "full" (the threshold): it refuses the dump the FinalizerBacklog alert asks for.
            const string host = "guard-rule";
            await rig.StartCollectorAsync(host, new HeapDumpOptions { Directory = Path.Combine(state.FullName, "dumps"), MinFreeBytes = long.MaxValue },
                finalizerInterval: TimeSpan.FromSeconds(1));
            var jvm = await rig.JvmAsync(host, slow.Pid);
            CommandResult? refused = null;
            Assert.True(await Pipeline.EventuallyAsync(() =>
            {
                refused = rig.ResultsTriggeredBy("rule:FinalizerBacklog").FirstOrDefault(r => r.Jvm.JvmId == jvm.JvmId && r.State == State.Failed);
                return Task.FromResult(refused is not null);
            }, TimeSpan.FromMinutes(3)), $"no refused rule-triggered dump\naggregator:\n{aggregator.Output}");
            Assert.Equal("disk-full", refused!.Failure);
            Assert.StartsWith(jvm.JvmId + "|FinalizerBacklog|", refused.AlertId, StringComparison.Ordinal);

            // The refusal is stored with its alert, and the alert is still firing, in the store and in the API.
            await rig.SamplingGoesOnAsync("after the refusal", jvm);
            string? storedFailure = null;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                var r = await pipeline.Query.QueryAsync($"SELECT \"failure\" FROM \"apm.command\" WHERE \"alert_id\" = '{refused.AlertId.Replace("'", "\\'", StringComparison.Ordinal)}'");
                storedFailure = r.Series.SelectMany(x => x.Values).Select(v => v[1].GetString()).LastOrDefault();
                return storedFailure is not null;
            }, TimeSpan.FromSeconds(30)), "the refusal was not stored");
            Assert.Equal("disk-full", storedFailure);
            // The command's steps start with the request the aggregator stored when the rule fired.
            var steps = await api.GetFromJsonAsync<JsonElement>("/api/commands/" + refused.CommandId);
            Assert.Equal("requested", steps.GetProperty("steps")[0].GetProperty("state").GetString());
            Assert.Equal("rule:FinalizerBacklog", steps.GetProperty("trigger").GetString());
            Assert.Equal("aggregator", steps.GetProperty("requestedBy").GetString());
            Assert.Equal("failed", steps.GetProperty("state").GetString());
            var firing = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=firing&jvm=" + Uri.EscapeDataString(jvm.JvmId));
            var alert = Assert.Single(firing.EnumerateArray(), a => a.GetProperty("id").GetString() == refused.AlertId);
            Assert.Equal("firing", alert.GetProperty("state").GetString());
            // Sampling and the rules go on: the alert is still firing a few evaluations later, not resolved nor re-fired.
            await rig.SamplingGoesOnAsync("after the refusal", jvm);
            await rig.SamplingGoesOnAsync("after the refusal", jvm);
            var all = await api.GetFromJsonAsync<JsonElement>("/api/alerts?state=all&jvm=" + Uri.EscapeDataString(jvm.JvmId));
            var backlog = Assert.Single(all.EnumerateArray(), a => a.GetProperty("rule").GetString() == "FinalizerBacklog");
            Assert.Equal(refused.AlertId, backlog.GetProperty("id").GetString());
            Assert.Equal("firing", backlog.GetProperty("state").GetString());
            Assert.Single(rig.ResultsTriggeredBy("rule:FinalizerBacklog"), r => r.Jvm.JvmId == jvm.JvmId);
        }
        finally
        {
            await rig.DisposeAsync();
            state.Delete(true);
        }
    }

    /// <summary>Sends <paramref name="jvm"/> a dump command that it takes but does not answer until <see cref="JavaFixture.Resume"/>.</summary>
    private static async Task<CollectorCommand> StartHeldDumpAsync(CommandRig rig, JavaFixture fixture, JvmIdentity jvm)
    {
        // The attach listener must be up before the JVM stops (a stopped JVM cannot start it).
        fixture.Jcmd("VM.version");
        fixture.Pause();
        var command = rig.Send(jvm);
        await rig.WaitForAsync(command.CommandId, r => r.State == State.Running, "running (the dump started)");
        Assert.Equal([State.Accepted, State.Running], rig.Results(command.CommandId).Select(r => r.State));
        return command;
    }

    private static async Task<JavaFixture> StartJvmAsync(string mainClass, string[] options, string[]? args = null)
    {
        var jvm = JavaFixture.Start(mainClass, options, args);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(60));
        return jvm;
    }

    /// <summary>Mounts a tmpfs of <paramref name="bytes"/> on <paramref name="directory"/>; false (and why) where mounting is not allowed.</summary>
    private static bool TryMountTmpfs(string directory, long bytes, out string whyNot)
    {
        try
        {
            JavaFixture.RunTool("mount", ["-t", "tmpfs", "-o", $"size={bytes},mode=1777", "tmpfs", directory]);
            whyNot = "";
            return true;
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            whyNot = "mount -t tmpfs needs CAP_SYS_ADMIN: " + ex.Message.Trim();
            return false;
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

    /// <summary>Sends commands to the real (mock-cluster) commands topic, as `apm up` does.</summary>
    private sealed class TopicCommandSender(KafkaOptions kafka) : Apm.Server.ICommandSender, IDisposable
    {
        private readonly IProducer<string, byte[]> _producer = new ProducerBuilder<string, byte[]>(kafka.CreateProducerConfig()).Build();

        public async Task SendAsync(CollectorCommand command, CancellationToken ct) =>
            await _producer.ProduceAsync(ApmTopics.Commands, new Message<string, byte[]> { Key = command.TargetHost, Value = command.ToByteArray() }, ct);

        public void Dispose() => _producer.Dispose();
    }

    [Fact]
    public async Task The_API_and_apm_dump_ask_a_live_JVMs_collector_for_a_dump_and_follow_each_step_to_the_report_or_the_refusal_and_its_reason()
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
                // One dump per JVM per hour (the default): the second request is refused as too soon.
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
                var list = await api.GetFromJsonAsync<JsonElement>("/api/jvms");
                id = list.EnumerateArray().Where(j => j.GetProperty("pid").GetInt32() == jvm.Pid).Select(j => j.GetProperty("id").GetString()).FirstOrDefault();
                return id != null;
            }, TimeSpan.FromSeconds(30)), "the JVM never appeared");
            Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(collector.CommandsReady), TimeSpan.FromSeconds(30)), "the command listener never got its partitions");

            HttpRequestMessage Post(string jvmId) => new(HttpMethod.Post, $"/api/jvms/{Uri.EscapeDataString(jvmId)}/heap-dump") { Headers = { { "X-Apm-Request", "1" } } };
            using (var unknown = await api.SendAsync(Post("nobody:1:1"))) Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

            // apm dump, a real process against the real API: it prints each step and exits 0 once the report is done.
            var url = api.BaseAddress!.ToString();
            var samplesBefore = metrics.SamplesPublished;
            var (code, output) = await ChildProcess.RunApmAsync(TimeSpan.FromMinutes(5), "dump", id!, "--url", url, "--timeout", "4m");
            Assert.True(code == 0, $"apm dump exited {code}:\n{output}");
            var printed = Regex.Matches(output, @"^\d\d:\d\d:\d\d (\w+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
            // The collector's steps (agent-protocol/PROTOCOL.md): running while the JVM writes the dump, then while it is triaged.
            Assert.Equal(["requested", "accepted", "running", "running", "done"], printed);
            Assert.Matches(@"report: http://127\.0\.0\.1:\d+/reports/[0-9a-f]{32}", output);
            var done = Regex.Match(output, "command ([0-9a-f]{32})").Groups[1].Value;
            // Sampling went on while the dump was taken and triaged (it runs on its own task).
            Assert.True(metrics.SamplesPublished > samplesBefore, $"no samples published during the dump ({samplesBefore} before, {metrics.SamplesPublished} after)");

            // The API's answer points at the command; following it shows the refusal (too soon after the last dump) and why.
            using var response = await api.SendAsync(Post(id!));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var accepted = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            var commandId = accepted.GetProperty("commandId").GetString()!;
            Assert.Equal("api-dump-host", accepted.GetProperty("host").GetString());
            Assert.Equal($"/api/commands/{commandId}", response.Headers.Location!.OriginalString);
            Assert.Equal($"/api/commands/{commandId}", accepted.GetProperty("status").GetString());
            JsonElement status = default;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                status = await api.GetFromJsonAsync<JsonElement>(response.Headers.Location);
                return status.GetProperty("finished").GetBoolean();
            }, TimeSpan.FromSeconds(60)), "the refusal never arrived: " + status);
            Assert.Equal("failed", status.GetProperty("state").GetString());
            Assert.Equal("too-soon", status.GetProperty("failure").GetString());
            Assert.Contains("minimum interval", status.GetProperty("reason").GetString(), StringComparison.Ordinal);
            Assert.Equal(["requested", "failed"], status.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("state").GetString()));
            Assert.Equal("api", status.GetProperty("trigger").GetString());

            // apm dump reports the refusal with its reason and a non-zero exit.
            (code, output) = await ChildProcess.RunApmAsync(TimeSpan.FromMinutes(3), "dump", id!, "--url", url);
            Assert.True(code == 1, $"apm dump exited {code}:\n{output}");
            Assert.Contains("refused or failed the dump (too-soon): The last dump of this JVM was at", output, StringComparison.Ordinal);
            Assert.Matches(@"\d\d:\d\d:\d\d failed \(too-soon\): ", output);

            // --no-wait only sends it.
            (code, output) = await ChildProcess.RunApmAsync(TimeSpan.FromMinutes(1), "dump", id!, "--url", url, "--no-wait");
            Assert.True(code == 0, $"apm dump --no-wait exited {code}:\n{output}");
            Assert.Contains("follow it at " + url + "api/commands/", output, StringComparison.Ordinal);

            // The JVM's commands, newest first, each with its latest state; the CLI's are marked as such.
            var recent = (await api.GetFromJsonAsync<JsonElement>("/api/commands?jvm=" + Uri.EscapeDataString(id!))).EnumerateArray().ToList();
            Assert.Equal(4, recent.Count);
            Assert.Equal(done, recent[^1].GetProperty("id").GetString());
            Assert.Equal("done", recent[^1].GetProperty("state").GetString());
            Assert.Matches("^[0-9a-f]{32}$", recent[^1].GetProperty("reportId").GetString());
            Assert.Equal(commandId, recent[^2].GetProperty("id").GetString());
            Assert.Equal(["cli", "cli", "api", "cli"], recent.Select(c => c.GetProperty("trigger").GetString()));
            Assert.Equal(4, recent.Select(c => c.GetProperty("requestedAt").GetDateTimeOffset()).Distinct().Count());

            // Ids are checked: malformed is 400, unknown is 404.
            using (var malformed = await api.GetAsync("/api/commands/not%20an%20id")) Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
            using (var missing = await api.GetAsync("/api/commands/" + Guid.NewGuid().ToString("N"))) Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
            dumps.Delete(true);
        }
    }
}
