import factory
from django.contrib.auth import get_user_model

from gateways.models import Gateway
from pipelines.models import Pipeline
from runs.models import Run


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway

    name = factory.Sequence(lambda n: f"gateway-{n}")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline

    name = factory.Sequence(lambda n: f"pipeline_{n}")
    default_gateway = factory.SubFactory(GatewayFactory)


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    pipeline = factory.SubFactory(PipelineFactory)
    gateway = factory.LazyAttribute(lambda run: run.pipeline.default_gateway)
