using Confluent.Kafka;
using Xunit.Abstractions;

namespace Apm.Kafka.Tests;

public sealed class KafkaOptionsAndRuntimeTests(ITestOutputHelper output)
{
    [Fact]
    public void Producer_settings_are_idempotent_acks_all_lz4_with_20_ms_batches_and_extra_properties_win()
    {
        var options = new KafkaOptions { BootstrapServers = "broker-1:9092,broker-2:9092" };
        options.Extra["linger.ms"] = "50";
        options.Extra["socket.keepalive.enable"] = "true";

        var producer = options.CreateProducerConfig("collector-1");
        Assert.Equal("broker-1:9092,broker-2:9092", producer.BootstrapServers);
        Assert.Equal("collector-1", producer.ClientId);
        Assert.True(producer.EnableIdempotence);
        Assert.Equal(Acks.All, producer.Acks);
        Assert.Equal(CompressionType.Lz4, producer.CompressionType);
        Assert.Equal(50, producer.LingerMs); // Extra overrides the default of 20
        Assert.Equal("true", producer.Get("socket.keepalive.enable"));
        Assert.Equal(20, new KafkaOptions { BootstrapServers = "b:1" }.CreateProducerConfig().LingerMs);
    }

    [Fact]
    public void Extra_properties_of_one_client_type_are_not_given_to_the_other()
    {
        var options = new KafkaOptions { BootstrapServers = "b:9092" };
        options.Extra["session.timeout.ms"] = "6000";
        options.Extra["linger.ms"] = "50";
        options.Extra["socket.keepalive.enable"] = "true";

        var producer = options.CreateProducerConfig();
        var consumer = options.CreateConsumerConfig("g");
        var admin = options.CreateAdminClientConfig();

        Assert.Null(producer.Get("session.timeout.ms"));
        Assert.Equal(50, producer.LingerMs);
        Assert.Equal(6000, consumer.SessionTimeoutMs);
        Assert.Null(consumer.Get("linger.ms"));
        Assert.Null(admin.Get("session.timeout.ms"));
        Assert.Null(admin.Get("linger.ms"));
        Assert.All(new ClientConfig[] { producer, consumer, admin }, c => Assert.Equal("true", c.Get("socket.keepalive.enable")));
    }

    [Fact]
    public void Consumer_settings_store_offsets_only_when_the_application_says_so_and_commit_them_in_the_background()
    {
        var consumer = new KafkaOptions { BootstrapServers = "b:9092" }.CreateConsumerConfig("aggregators");
        Assert.Equal("aggregators", consumer.GroupId);
        Assert.True(consumer.EnableAutoCommit);
        Assert.False(consumer.EnableAutoOffsetStore);
        Assert.Equal(AutoOffsetReset.Earliest, consumer.AutoOffsetReset);

        Assert.Throws<ArgumentException>(() => new KafkaOptions { BootstrapServers = "b:9092" }.CreateConsumerConfig(" "));
        var embedded = Assert.Throws<InvalidOperationException>(() => new KafkaOptions().CreateProducerConfig());
        Assert.Contains("embedded", embedded.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Security_settings_pass_through_and_secrets_never_appear_in_ToString()
    {
        var options = new KafkaOptions
        {
            BootstrapServers = "b:9093",
            SecurityProtocol = SecurityProtocol.SaslSsl,
            SaslMechanism = SaslMechanism.ScramSha512,
            SaslUsername = "apm-user",
            SaslPassword = "hunter2-secret",
            SslCaLocation = "ca.pem",
        };
        options.Extra["ssl.key.password"] = "another-secret";

        var admin = options.CreateAdminClientConfig();
        Assert.Equal(SecurityProtocol.SaslSsl, admin.SecurityProtocol);
        Assert.Equal(SaslMechanism.ScramSha512, admin.SaslMechanism);
        Assert.Equal("apm-user", admin.SaslUsername);
        Assert.Equal("hunter2-secret", admin.SaslPassword);
        Assert.Equal("ca.pem", admin.SslCaLocation);
        Assert.Equal("another-secret", admin.Get("ssl.key.password"));

        var text = options.ToString();
        output.WriteLine(text);
        Assert.DoesNotContain("hunter2", text, StringComparison.Ordinal);
        Assert.DoesNotContain("another-secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("apm-user", text, StringComparison.Ordinal);
        Assert.Contains("ssl.key.password", text, StringComparison.Ordinal);

        var copy = options.WithBootstrapServers("other:9093");
        copy.Extra["x"] = "y";
        Assert.Equal("b:9093", options.BootstrapServers);
        Assert.False(options.Extra.ContainsKey("x"));
        Assert.Equal("hunter2-secret", copy.SaslPassword);
    }

    [Fact]
    public async Task Empty_bootstrap_servers_start_the_embedded_cluster_with_every_Apm_topic_at_six_partitions()
    {
        using var runtime = await KafkaRuntime.StartAsync(new KafkaOptions(), new TestLogger(output));
        Assert.NotNull(runtime.Embedded);
        Assert.StartsWith("127.0.0.1:", runtime.BootstrapServers, StringComparison.Ordinal);

        using var admin = new AdminClientBuilder(runtime.Options.CreateAdminClientConfig()).Build();
        var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
        foreach (var topic in ApmTopics.All)
        {
            var found = Assert.Single(metadata.Topics, t => t.Topic == topic);
            Assert.Equal(ApmTopics.DefaultPartitions, found.Partitions.Count);
        }

        // Idempotent: the topics exist now, so nothing is created twice.
        Assert.Empty(TopicAdmin.EnsureTopics(runtime.Embedded, ApmTopics.All, 6));
    }

    [Fact]
    public async Task EnsureTopicsAsync_fails_with_a_clear_error_on_the_mock_cluster_which_has_no_controller()
    {
        // Documents why KafkaRuntime creates embedded topics directly: librdkafka 2.0.2's mock serves no CreateTopics.
        using var cluster = EmbeddedKafkaCluster.Start();
        var options = new KafkaOptions { BootstrapServers = cluster.BootstrapServers };
        var error = await Assert.ThrowsAsync<KafkaException>(() => TopicAdmin.EnsureTopicsAsync(options, ["fresh"], timeout: TimeSpan.FromSeconds(2)));
        output.WriteLine(error.Message);
        Assert.Contains("controller", error.Message, StringComparison.Ordinal);

        await Assert.ThrowsAsync<ArgumentException>(() => TopicAdmin.EnsureTopicsAsync(options, ["bad/name"]));
    }
}
