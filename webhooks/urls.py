from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("runs/<str:public_id>/webhooks/", views.run_deliveries, name="run-deliveries"),
]
