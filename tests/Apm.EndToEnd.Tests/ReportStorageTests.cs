using System.Net.Http.Json;
using System.Text.Json;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Reports;
using Apm.Testing;
using Confluent.Kafka;
using Google.Protobuf;

namespace Apm.EndToEnd.Tests;

/// <summary>The reports consumer of a real `apm aggregator` process: it runs with the rules off, and a failing store does not stop it.</summary>
public sealed class ReportStorageTests
{
    [Fact]
    public async Task An_aggregator_with_the_rules_off_stores_reports_and_a_broken_store_is_counted_retried_and_recovered_without_losing_the_report()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var root = Directory.CreateTempSubdirectory("apm-report-storage-");
        var store = Path.Combine(root.FullName, "reports");
        var port = FreePort.Next();
        using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using var producer = new ProducerBuilder<string, byte[]>(pipeline.KafkaOptions.CreateProducerConfig()).Build();
        var jvm = new JvmIdentity { JvmId = "store-host:7:1", Host = "store-host", MainClass = "com.example.Stored" };
        var aggregator = ChildProcess.StartAggregator(pipeline, port, new Dictionary<string, string>
        {
            ["Apm__Alerts__Enabled"] = "false",
            ["Apm__Reports__Directory"] = store,
            ["Apm__DataDirectory"] = root.FullName,
        });

        void Publish(string id)
        {
            var meta = new ReportMeta(id, jvm.JvmId, jvm.Host, jvm.MainClass, DateTimeOffset.UtcNow, "cli", "", "cmd-" + id[..4], "finding of " + id[..4], 1234);
            var html = new byte[300_000];
            new Random(id[0]).NextBytes(html); // incompressible: the report spans several chunks
            foreach (var chunk in ReportChunks.Split(new ReportContent(meta, "{\"findings\":[]}"u8.ToArray(), html), jvm, chunkBytes: 64 * 1024))
                producer.Produce(ApmTopics.Reports, new Message<string, byte[]> { Key = id, Value = chunk.ToByteArray() });
            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        }

        async Task<List<string>> ListedAsync()
        {
            try
            {
                var list = await api.GetFromJsonAsync<JsonElement>("/api/reports");
                return list.EnumerateArray().Select(r => r.GetProperty("id").GetString()!).ToList();
            }
            catch (HttpRequestException)
            {
                return []; // not listening yet
            }
        }

        async Task<long> CounterAsync(string name)
        {
            var health = await api.GetFromJsonAsync<JsonElement>("/healthz");
            return health.GetProperty("counters").TryGetProperty(name, out var v) ? v.GetInt64() : -1;
        }

        try
        {
            var first = new string('1', 32);
            var second = new string('2', 32);
            Publish(first);
            Assert.True(await Pipeline.EventuallyAsync(async () => (await ListedAsync()).Contains(first), TimeSpan.FromSeconds(90)),
                "the report was not stored with the rules off:\n" + aggregator.Output);

            // The store breaks (its directory replaced by a file): the report is counted as a store failure and retried.
            Directory.Move(store, store + ".away");
            await File.WriteAllTextAsync(store, "not a directory");
            Publish(second);
            Assert.True(await Pipeline.EventuallyAsync(async () => await CounterAsync("aggregator.report_store_failures") >= 2, TimeSpan.FromSeconds(60)),
                "no failed and retried store attempt was counted:\n" + aggregator.Output);
            Assert.False(aggregator.Process.HasExited, aggregator.Output);

            // The store comes back: the same consumer stores the report at its next attempt; nothing was lost or refused.
            File.Delete(store);
            Directory.Move(store + ".away", store);
            Assert.True(await Pipeline.EventuallyAsync(async () => (await ListedAsync()).Contains(second), TimeSpan.FromSeconds(90)),
                "the report was not stored once the store worked again:\n" + aggregator.Output);
            Assert.Equal([first, second], (await ListedAsync()).Order(StringComparer.Ordinal));
            Assert.Equal(2, await CounterAsync("aggregator.reports_stored"));
            Assert.Equal(0, await CounterAsync("aggregator.reports_rejected"));
            Assert.Contains("could not be stored", aggregator.Output, StringComparison.Ordinal);
            Assert.False(aggregator.Process.HasExited, aggregator.Output);
        }
        finally
        {
            aggregator.Dispose();
            root.Delete(true);
        }
    }
}
