from rest_framework.routers import SimpleRouter

from .views import OrderViewSet

# Path converters, so OrderViewSet.lookup_value_converter = "int" holds: a non-numeric id never
# reaches a view (the catch-all answers a JSON 404).
router = SimpleRouter(trailing_slash=True, use_regex_path=False)
router.register("orders", OrderViewSet, basename="order")

urlpatterns = router.urls
