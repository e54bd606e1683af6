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
}
