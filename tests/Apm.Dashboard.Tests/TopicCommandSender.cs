using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Server;
using Confluent.Kafka;
using Google.Protobuf;

namespace Apm.Dashboard.Tests;

/// <summary>Sends commands to the real (mock-cluster) commands topic, as `apm up` does.</summary>
internal sealed class TopicCommandSender(KafkaOptions kafka) : ICommandSender, IDisposable
{
    private readonly IProducer<string, byte[]> _producer = new ProducerBuilder<string, byte[]>(kafka.CreateProducerConfig()).Build();

    public async Task SendAsync(CollectorCommand command, CancellationToken ct) =>
        await _producer.ProduceAsync(ApmTopics.Commands, new Message<string, byte[]> { Key = command.TargetHost, Value = command.ToByteArray() }, ct);

    public void Dispose() => _producer.Dispose();
}
