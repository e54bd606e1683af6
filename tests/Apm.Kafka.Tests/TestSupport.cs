using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Apm.Kafka.Tests;

/// <summary>Routes log lines to xunit's per-test output, and keeps them for assertions.</summary>
internal sealed class TestLogger(ITestOutputHelper? output, LogLevel minimum = LogLevel.Information) : ILogger
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var line = $"{logLevel}: {formatter(state, exception)}";
        Lines.Enqueue(line);
        try
        {
            output?.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // librdkafka threads may log after the test finished; xunit refuses output then.
        }
    }
}

internal static class Kafka
{
    /// <summary>Only a guard against hangs (a test fails instead of waiting forever); never a performance limit.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    public static KafkaOptions Options(EmbeddedKafkaCluster cluster) => new() { BootstrapServers = cluster.BootstrapServers };

    /// <summary>Polls until <paramref name="condition"/> holds or <see cref="Patience"/> runs out.</summary>
    public static void WaitUntil(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Patience)
            {
                throw new TimeoutException($"Gave up waiting for {what} after {Patience.TotalSeconds} s.");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>
    /// Reads a topic's whole log with an assigned (group-less) consumer, from each partition's start to the
    /// high watermark seen when called.
    /// </summary>
    public static List<ConsumeResult<string, byte[]>> ReadAll(EmbeddedKafkaCluster cluster, string topic, int partitions)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        };
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        var remaining = new HashSet<int>();
        var assignments = new List<TopicPartitionOffset>();
        for (var p = 0; p < partitions; p++)
        {
            var tp = new TopicPartition(topic, p);
            var marks = consumer.QueryWatermarkOffsets(tp, Patience);
            if (marks.High > marks.Low)
            {
                remaining.Add(p);
            }

            assignments.Add(new TopicPartitionOffset(tp, Offset.Beginning));
        }

        consumer.Assign(assignments);
        var results = new List<ConsumeResult<string, byte[]>>();
        var clock = Stopwatch.StartNew();
        while (remaining.Count > 0)
        {
            if (clock.Elapsed > Patience)
            {
                throw new TimeoutException($"Read {results.Count} messages of {topic}; partitions {string.Join(",", remaining)} never reached their end.");
            }

            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                remaining.Remove(result.Partition.Value);
                continue;
            }

            results.Add(result);
        }

        consumer.Close();
        return results;
    }

    /// <summary>Produces and waits for every delivery report; returns how many failed.</summary>
    public static int ProduceAll(IProducer<string, byte[]> producer, string topic, IEnumerable<Message<string, byte[]>> messages)
    {
        var failed = 0;
        foreach (var message in messages)
        {
            while (true)
            {
                try
                {
                    producer.Produce(topic, message, report =>
                    {
                        if (report.Error.IsError)
                        {
                            Interlocked.Increment(ref failed);
                        }
                    });
                    break;
                }
                catch (ProduceException<string, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(50));
                }
            }
        }

        var left = producer.Flush(Patience);
        Assert.Equal(0, left);
        return failed;
    }
}
